"""Terraform's AWS provider (from the local filesystem mirror) managing a layer version, a
function published with `publish = true` that uses it, and an alias on the published version."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from alonzo_helpers import ROLE, error_code, make_zip, sha256_b64, unique_name
from terraform_harness import make_terraform, needs_terraform, provider_block

pytestmark = needs_terraform

APP = """
import layered


def handler(event, context):
    return {"code": "__TAG__", "layer": layered.WHO, "version": context.function_version,
            "arn": context.invoked_function_arn}
"""


def fn_zip(tag: str) -> bytes:
    return make_zip([("app.py", APP.replace("__TAG__", tag))])


def layer_zip() -> bytes:
    return make_zip([("python/layered.py", "WHO = 'tf-layer'\n")])


def main_tf(server, name: str, layer: str) -> str:
    return provider_block(server) + f"""

resource "aws_lambda_layer_version" "lib" {{
  filename            = "layer.zip"
  layer_name          = "{layer}"
  compatible_runtimes = ["python3.11"]
  source_code_hash    = filebase64sha256("layer.zip")
  description         = "terraform layer"
}}

resource "aws_lambda_function" "f" {{
  function_name    = "{name}"
  role             = "{ROLE}"
  handler          = "app.handler"
  runtime          = "python3.11"
  filename         = "fn.zip"
  source_code_hash = filebase64sha256("fn.zip")
  timeout          = 10
  publish          = true
  layers           = [aws_lambda_layer_version.lib.arn]
}}

resource "aws_lambda_alias" "live" {{
  name             = "live"
  description      = "points at the published version"
  function_name    = aws_lambda_function.f.function_name
  function_version = aws_lambda_function.f.version
}}

output "version" {{
  value = aws_lambda_function.f.version
}}

output "qualified_arn" {{
  value = aws_lambda_function.f.qualified_arn
}}

output "layer_arn" {{
  value = aws_lambda_layer_version.lib.arn
}}

output "alias_arn" {{
  value = aws_lambda_alias.live.arn
}}
"""


@pytest.fixture
def tf(server, tmp_path):
    return make_terraform(server, tmp_path)


def invoke(client, ref: str) -> tuple[dict, dict]:
    resp = client.invoke(FunctionName=ref, Payload=b"{}")
    body = resp["Payload"].read()
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, body[:2000]
    return resp, json.loads(body)


def layer_versions(client, layer: str) -> list[dict]:
    try:
        return [v for p in client.get_paginator("list_layer_versions").paginate(LayerName=layer) for v in p["LayerVersions"]]
    except ClientError as e:
        assert error_code(e) == "ResourceNotFoundException", e.response
        return []


def test_terraform_layer_published_function_and_alias(server, lambda_client, tf):
    name = unique_name("tfv")
    layer = unique_name("tflayer")
    lz, z1 = layer_zip(), fn_zip("one")
    (tf.workdir / "layer.zip").write_bytes(lz)
    (tf.workdir / "fn.zip").write_bytes(z1)
    (tf.workdir / "main.tf").write_text(main_tf(server, name, layer))

    tf("init")
    tf("apply", "-auto-approve")

    layer_version_arn = f"arn:aws:lambda:{server.region}:{server.account}:layer:{layer}:1"
    assert tf("output", "-raw", "layer_arn").stdout.strip() == layer_version_arn
    lv = lambda_client.get_layer_version(LayerName=layer, VersionNumber=1)
    assert lv["Content"]["CodeSha256"] == sha256_b64(lz)
    assert lv["CompatibleRuntimes"] == ["python3.11"]
    assert lv["Description"] == "terraform layer"

    assert tf("output", "-raw", "version").stdout.strip() == "1"
    assert tf("output", "-raw", "qualified_arn").stdout.strip() == server.function_arn(name) + ":1"
    versions = lambda_client.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]
    v1 = lambda_client.get_function_configuration(FunctionName=name, Qualifier="1")
    assert v1["CodeSha256"] == sha256_b64(z1)
    assert [l["Arn"] for l in v1["Layers"]] == [layer_version_arn]

    alias = lambda_client.get_alias(FunctionName=name, Name="live")
    assert alias["FunctionVersion"] == "1"
    assert alias["Description"] == "points at the published version"
    assert tf("output", "-raw", "alias_arn").stdout.strip() == server.function_arn(name) + ":live"

    resp, out = invoke(lambda_client, f"{name}:live")
    assert out["code"] == "one" and out["layer"] == "tf-layer", out
    assert resp["ExecutedVersion"] == "1" and out["version"] == "1"
    assert out["arn"] == server.function_arn(name) + ":live"

    # A second plan sees no drift.
    tf("plan", "-detailed-exitcode")

    # New code: a new published version, and the alias follows it.
    z2 = fn_zip("two")
    (tf.workdir / "fn.zip").write_bytes(z2)
    tf("apply", "-auto-approve")
    assert tf("output", "-raw", "version").stdout.strip() == "2"
    assert lambda_client.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "2"
    assert lambda_client.get_function_configuration(FunctionName=name, Qualifier="1")["CodeSha256"] == sha256_b64(z1)
    resp, out = invoke(lambda_client, f"{name}:live")
    assert out["code"] == "two" and resp["ExecutedVersion"] == "2"
    assert invoke(lambda_client, f"{name}:1")[1]["code"] == "one"
    tf("plan", "-detailed-exitcode")

    tf("destroy", "-auto-approve")
    with pytest.raises(ClientError) as ei:
        lambda_client.get_function(FunctionName=name)
    assert error_code(ei.value) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as ei:
        lambda_client.get_alias(FunctionName=name, Name="live")
    assert error_code(ei.value) == "ResourceNotFoundException"
    assert layer_versions(lambda_client, layer) == [], "terraform destroy left layer versions behind"
    with pytest.raises(ClientError) as ei:
        lambda_client.get_layer_version(LayerName=layer, VersionNumber=1)
    assert error_code(ei.value) == "ResourceNotFoundException"
    names = {l["LayerName"] for p in lambda_client.get_paginator("list_layers").paginate() for l in p["Layers"]}
    assert layer not in names
