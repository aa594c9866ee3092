"""Web functions written for Lambda's HTTP adapters run unmodified: a Rust function built
with the official `lambda_http` crate (tests/fixtures/rust-http, built into target/fixtures)
behind a function URL (payload format 2.0) and behind API-gateway routes in both payload
formats (1.0 and 2.0). The Python side (Mangum with Starlette) is in test_function_urls.py.

A private server started with a routes file that names the function.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import requests

from alonzo_helpers import REPO, AlonzoServer, create_function, make_zip, unique_name

FIXTURE = REPO / "tests" / "fixtures" / "rust-http" / "Cargo.toml"
FIXTURE_TARGET = REPO / "target" / "fixtures"


@pytest.fixture(scope="module")
def http_bootstrap() -> bytes:
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not installed")
    env = dict(os.environ, CARGO_TARGET_DIR=str(FIXTURE_TARGET))
    p = subprocess.run([cargo, "build", "--release", "--locked", "--manifest-path", str(FIXTURE)], env=env,
                       capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, f"building the rust-http fixture failed:\n{p.stderr[-5000:]}"
    return (FIXTURE_TARGET / "release" / "http-bootstrap").read_bytes()


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, http_bootstrap):
    root = tmp_path_factory.mktemp("alonzo-http-frameworks")
    name = unique_name("lambdahttp")
    routes = {"stages": {"prod": {"routes": [
        {"route": "ANY /v1/{proxy+}", "function": name, "payload_format": "1.0"},
        {"route": "ANY /v2/{proxy+}", "function": name, "payload_format": "2.0"},
    ]}}}
    (root / "routes.json").write_text(json.dumps(routes))
    srv = AlonzoServer(root, owner="http-frameworks", extra_env={"ALONZO_ROUTES": str(root / "routes.json")})
    srv.start()
    client = srv.client()
    info = zipfile.ZipInfo("bootstrap")
    info.external_attr = 0o100755 << 16
    create_function(client, name, make_zip([(info, http_bootstrap)]), Runtime="provided.al2023", Handler="bootstrap")
    url = client.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    client.add_permission(FunctionName=name, StatementId="public", Action="lambda:InvokeFunctionUrl",
                          Principal="*", FunctionUrlAuthType="NONE")
    yield srv, url
    srv.close()


def check(r: requests.Response, method: str, path: str, name: str | None, body: str, status: int = 200):
    assert r.status_code == status, r.text
    assert r.headers["x-made-by"] == "lambda_http"
    assert r.headers["content-type"] == "application/json"
    got = r.json()
    assert got == {"method": method, "path": path, "name": name, "body": body, "lambda_http": True}, got


def test_lambda_http_behind_a_function_url(deployed):
    _, url = deployed
    check(requests.get(url + "hello?name=ada", timeout=60), "GET", "/hello", "ada", "")
    check(requests.post(url + "items", data="payload", headers={"content-type": "text/plain"}, timeout=60), "POST", "/items", None, "payload")
    check(requests.get(url + "teapot", timeout=60), "GET", "/teapot", None, "", status=418)


@pytest.mark.parametrize("fmt", ["v1", "v2"])
def test_lambda_http_behind_routes(deployed, fmt):
    srv, _ = deployed
    base = f"{srv.endpoint}/_routes/prod/{fmt}"
    # lambda_http reports the path API Gateway gives it: the stage-prefixed path for REST
    # (1.0) events and the raw path for HTTP API (2.0) events with a named stage.
    r = requests.get(base + "/pets?name=rex", timeout=60)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["method"] == "GET" and got["name"] == "rex" and got["lambda_http"] is True
    assert got["path"].endswith(f"/{fmt}/pets"), got
    r = requests.put(base + "/pets/1", data="x=1", headers={"content-type": "text/plain"}, timeout=60)
    assert r.status_code == 200 and r.json()["method"] == "PUT" and r.json()["body"] == "x=1", r.text
