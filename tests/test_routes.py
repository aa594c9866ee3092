"""API gateway routes: a private server started with a routes file (ALONZO_ROUTES / --routes),
then unsigned HTTP requests to /_routes/<stage>/…: the payload format 1.0 event (path
parameters, stage variables, multi-value headers and query, requestContext) through an
alias, the 2.0 event of a greedy proxy route and of the $default stage, route and method
precedence, 404s for unmatched paths, methods and stages, 502/500 on function errors, bad
results and missing functions, 429 when the function is throttled, `alonzo routes`, and invalid routes files refused at start-up.
"""

from __future__ import annotations

import json
import re
import socket
import uuid

import pytest
import requests

from alonzo_helpers import (
    ALONZO_BIN,
    AlonzoServer,
    clean_base_env,
    create_function,
    make_zip,
    run,
    unique_name,
)

APP = r'''
import json


def handler(event, context):
    path = event.get("rawPath") or event.get("path") or ""
    if path.endswith("/boom"):
        raise RuntimeError("boom")
    if "/noshape" in path:
        return {"hello": "world"}
    return {"statusCode": 200,
            "headers": {"content-type": "application/json", "x-version": context.function_version},
            "multiValueHeaders": {"x-multi": ["a", "b"]},
            "body": json.dumps(event)}
'''


def app_zip(marker: str) -> bytes:
    return make_zip([("app.py", APP + f"# {marker}\n")])


def routes_doc(fn: str, throttled: str) -> dict:
    return {
        "stages": {
            "prod": {
                "variables": {"color": "blue", "tier": "gold"},
                "routes": [
                    {"route": "GET /pets/{id}", "function": f"{fn}:live", "payload_format": "1.0"},
                    {"route": "GET /pets/{id}/toys/{toy}", "function": fn, "payload_format": "1.0"},
                    {"route": "POST /items/{id}", "function": fn, "payload_format": "1.0"},
                    {"route": "ANY /items/{id}", "function": fn, "payload_format": "2.0"},
                    {"route": "GET /items/special", "function": fn, "payload_format": "1.0"},
                    {"route": "ANY /api/{proxy+}", "function": fn, "payload_format": "2.0"},
                    {"route": "GET /boom", "function": fn, "payload_format": "2.0"},
                    {"route": "GET /noshape", "function": fn, "payload_format": "1.0"},
                    {"route": "GET /noshape2", "function": fn},
                    {"route": "GET /missing", "function": "no-such-function-xyz", "payload_format": "2.0"},
                    {"route": "GET /throttled", "function": throttled, "payload_format": "1.0"},
                ],
            },
            "$default": {"routes": [{"route": "$default", "function": fn, "payload_format": "2.0"}]},
        }
    }


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """A private server with a routes file, the routed function, and its alias `live` → 1."""
    root = tmp_path_factory.mktemp("alonzo-routes")
    fn, throttled = unique_name("routed"), unique_name("throttled")
    routes_file = root / "routes.json"
    routes_file.write_text(json.dumps(routes_doc(fn, throttled)))
    srv = AlonzoServer(root, owner="routes", extra_env={"ALONZO_ROUTES": str(routes_file)})
    srv.start()
    client = srv.client()
    create_function(client, fn, app_zip("v1"), Timeout=10)
    client.publish_version(FunctionName=fn)
    client.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    create_function(client, throttled, app_zip("t"))
    client.put_function_concurrency(FunctionName=throttled, ReservedConcurrentExecutions=0)
    yield srv, fn
    srv.close()


def url(srv, path: str) -> str:
    return f"{srv.endpoint}/_routes{path}"


def test_rest_route_with_path_parameters_and_stage_variables_through_an_alias(gateway):
    srv, fn = gateway
    r = requests.get(url(srv, "/prod/pets/42?q=1&q=2&single=x%20y"),
                     headers={"X-Multi": "one", "User-Agent": "routes-test/1"}, timeout=60)
    assert r.status_code == 200, r.text
    # The alias `live` points at version 1: the route ran the published version.
    assert r.headers["x-version"] == "1"
    assert r.headers["x-amzn-RequestId"]
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-multi"] == "a, b"  # multiValueHeaders: two header lines
    e = r.json()
    assert e["version"] == "1.0"
    assert e["resource"] == "/pets/{id}"
    assert e["path"] == "/pets/42"
    assert e["httpMethod"] == "GET"
    assert e["pathParameters"] == {"id": "42"}
    assert e["stageVariables"] == {"color": "blue", "tier": "gold"}
    assert e["queryStringParameters"] == {"q": "2", "single": "x y"}
    assert e["multiValueQueryStringParameters"] == {"q": ["1", "2"], "single": ["x y"]}
    assert e["headers"]["x-multi"] == "one"
    assert e["multiValueHeaders"]["x-multi"] == ["one"]
    assert e["body"] is None and e["isBase64Encoded"] is False
    ctx = e["requestContext"]
    assert ctx["stage"] == "prod"
    assert ctx["path"] == "/prod/pets/42"
    assert ctx["resourcePath"] == "/pets/{id}"
    assert ctx["httpMethod"] == "GET"
    assert ctx["accountId"] == srv.account
    assert ctx["requestId"] == r.headers["x-amzn-RequestId"]
    assert ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert ctx["identity"]["userAgent"] == "routes-test/1"
    assert ctx["protocol"] == "HTTP/1.1"
    assert ctx["domainName"] == f"127.0.0.1:{srv.port}"
    assert isinstance(ctx["requestTimeEpoch"], int) and ctx["requestTime"]


def test_two_parameters_are_decoded(gateway):
    srv, _ = gateway
    r = requests.get(url(srv, "/prod/pets/7/toys/red%20ball"), timeout=60)
    assert r.status_code == 200, r.text
    e = r.json()
    assert e["pathParameters"] == {"id": "7", "toy": "red ball"}
    assert e["resource"] == "/pets/{id}/toys/{toy}"
    # Unqualified route: $LATEST ran.
    assert r.headers["x-version"] == "$LATEST"


def test_http_api_proxy_route_payload_2(gateway):
    srv, _ = gateway
    r = requests.put(url(srv, "/prod/api/a/b/c?x=1&x=2"), data=json.dumps({"k": "v"}),
                     headers={"Content-Type": "application/json", "Cookie": "s=1; t=2"}, timeout=60)
    assert r.status_code == 200, r.text
    e = r.json()
    assert e["version"] == "2.0"
    assert e["routeKey"] == "ANY /api/{proxy+}"
    # A named stage appears in rawPath, as on HTTP APIs.
    assert e["rawPath"] == "/prod/api/a/b/c"
    assert e["rawQueryString"] == "x=1&x=2"
    assert e["queryStringParameters"] == {"x": "1,2"}
    assert e["pathParameters"] == {"proxy": "a/b/c"}
    assert e["stageVariables"] == {"color": "blue", "tier": "gold"}
    assert e["cookies"] == ["s=1", "t=2"]
    assert e["body"] == '{"k": "v"}' and e["isBase64Encoded"] is False
    ctx = e["requestContext"]
    assert ctx["routeKey"] == "ANY /api/{proxy+}"
    assert ctx["stage"] == "prod"
    assert ctx["http"]["method"] == "PUT"
    assert ctx["http"]["path"] == "/prod/api/a/b/c"


def test_default_stage_and_default_route(gateway):
    srv, _ = gateway
    r = requests.delete(url(srv, "/$default/any/where"), timeout=60)
    assert r.status_code == 200, r.text
    e = r.json()
    assert e["routeKey"] == "$default"
    assert e["rawPath"] == "/any/where"
    assert e["requestContext"]["stage"] == "$default"
    assert "pathParameters" not in e
    # The stage's root is matched by $default too.
    assert requests.get(url(srv, "/%24default"), timeout=60).json()["rawPath"] == "/"


def test_method_and_path_precedence(gateway):
    srv, _ = gateway
    # POST has its own 1.0 route; other methods on the same path fall back to ANY (2.0).
    post = requests.post(url(srv, "/prod/items/9"), timeout=60).json()
    assert (post["version"], post["resource"], post["httpMethod"]) == ("1.0", "/items/{id}", "POST")
    get = requests.get(url(srv, "/prod/items/9"), timeout=60).json()
    assert (get["version"], get["routeKey"]) == ("2.0", "ANY /items/{id}")
    assert get["pathParameters"] == {"id": "9"}
    # An exact path beats a parameter path.
    special = requests.get(url(srv, "/prod/items/special"), timeout=60).json()
    assert (special["version"], special["resource"]) == ("1.0", "/items/special")
    assert special["pathParameters"] is None
    # ... but only for its own method: POST /items/special is the parameter route.
    posted = requests.post(url(srv, "/prod/items/special"), timeout=60).json()
    assert posted["resource"] == "/items/{id}" and posted["pathParameters"] == {"id": "special"}


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/prod/nothing/here"),
        ("GET", "/prod/pets"),
        ("GET", "/prod/pets/1/2"),
        ("DELETE", "/prod/pets/1"),
        ("GET", "/prod/api"),  # a greedy parameter needs at least one segment
        ("GET", "/prod"),
        ("GET", "/staging/pets/1"),
        ("GET", ""),
    ],
)
def test_unmatched_routes_and_unknown_stages_are_404(gateway, method, path):
    srv, _ = gateway
    r = requests.request(method, url(srv, path), timeout=60)
    assert r.status_code == 404, r.text
    assert r.json() == {"message": "Not Found"}


def test_function_error_and_bad_results_are_502(gateway):
    srv, _ = gateway
    r = requests.get(url(srv, "/prod/boom"), timeout=60)
    assert r.status_code == 502, r.text
    assert r.json() == {"message": "Internal server error"}
    # 1.0 requires a statusCode object.
    r = requests.get(url(srv, "/prod/noshape"), timeout=60)
    assert r.status_code == 502, r.text
    assert r.json() == {"message": "Internal server error"}
    # 2.0 (the default format) turns any other JSON into a 200 body.
    r = requests.get(url(srv, "/prod/noshape2"), timeout=60)
    assert r.status_code == 200, r.text
    assert r.json() == {"hello": "world"}


def test_route_to_a_missing_function_is_500(gateway):
    srv, _ = gateway
    r = requests.get(url(srv, "/prod/missing"), timeout=60)
    assert r.status_code == 500, r.text
    assert r.json() == {"message": "Internal server error"}
    assert "no-such-function" not in r.text


def test_throttled_function_is_429(gateway):
    srv, _ = gateway
    r = requests.get(url(srv, "/prod/throttled"), timeout=60)
    assert r.status_code == 429, r.text
    assert r.json() == {"message": "Too Many Requests"}
    assert r.headers["Retry-After"] == "1"


def test_alonzo_routes_prints_the_loaded_table(gateway):
    srv, fn = gateway
    p = run([str(ALONZO_BIN), "routes"], env=srv.env, timeout=60)
    assert p.returncode == 0, p.stderr
    line = next(l for l in p.stdout.splitlines() if "GET /pets/{id}" in l and "toys" not in l)
    assert line.split() == ["/_routes/prod", "GET", "/pets/{id}", f"{fn}:live", "1.0"]
    p = run([str(ALONZO_BIN), "routes", "--json"], env=srv.env, timeout=60)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["Stages"]["prod"]["Variables"] == {"color": "blue", "tier": "gold"}
    assert doc["Stages"]["$default"]["Routes"] == [{"Route": "$default", "Function": fn, "PayloadFormat": "2.0"}]
    # The table is a signed operation: an unsigned request is refused.
    assert requests.get(f"{srv.endpoint}/_alonzo/api/routes", timeout=30).status_code == 403


# ---------------------------------------------------------------------------------------
# Start-up validation
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content,keyword",
    [
        ("{not json", r"routes file"),
        ('{"stages": {"prod": {"routes": [{"route": "FETCH /x", "function": "f"}]}}}', r"method \"FETCH\""),
        ('{"stages": {"prod": {"routes": [{"route": "GET /{p+}/x", "function": "f"}]}}}', r"last segment"),
        ('{"stages": {"prod": {"routes": [{"route": "GET /x", "function": "f", "payload_format": "3"}]}}}', r"payload_format"),
        ('{"stages": {"prod": {"routes": [{"route": "GET /a/{id}", "function": "f"}, {"route": "GET /a/{x}", "function": "g"}]}}}', r"conflicts"),
        ('{"stages": {"prod": {"routes": [{"route": "GET /x", "function": "not a name"}]}}}', r"function"),
        ('{"stages": {"prod": {"routez": []}}}', r"routez"),
        (None, r"cannot read"),
    ],
    ids=["not-json", "bad-method", "greedy-not-last", "bad-format", "conflict", "bad-function", "unknown-key", "missing-file"],
)
def test_invalid_routes_file_exits_2_before_binding(tmp_path, content, keyword):
    routes_file = tmp_path / "routes.json"
    if content is not None:
        routes_file.write_text(content)
    env = clean_base_env()
    env.update(ALONZO_ACCESS_KEY_ID="AKIAALONZOTEST0000001", ALONZO_SECRET_ACCESS_KEY="secret-secret-secret-secret")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        p = run([str(ALONZO_BIN), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data"),
                 "--routes", str(routes_file)], env=env, timeout=15)
    out = p.stdout + p.stderr
    assert p.returncode == 2, out
    assert "routes" in out.lower() and re.search(keyword, out), out
    assert "panicked" not in out and "in use" not in out, out
    # Nothing was created: validation happens before the data directory is touched.
    assert not (tmp_path / "data").exists()


def test_env_variable_names_the_routes_file(tmp_path):
    routes_file = tmp_path / f"{uuid.uuid4().hex}.json"
    routes_file.write_text('{"stages": {"bad stage": {}}}')
    env = clean_base_env()
    env.update(ALONZO_ACCESS_KEY_ID="AKIAALONZOTEST0000001", ALONZO_SECRET_ACCESS_KEY="secret-secret-secret-secret",
               ALONZO_ROUTES=str(routes_file))
    p = run([str(ALONZO_BIN), "serve", "--listen", "127.0.0.1:1", "--data-dir", str(tmp_path / "data")], env=env, timeout=15)
    assert p.returncode == 2, p.stderr
    assert routes_file.name in p.stderr and "stage name" in p.stderr, p.stderr
