"""Terraform's AWS provider (from the local filesystem mirror) managing a function URL with
CORS and an explicit `aws_lambda_permission`: apply, the URL answers over plain HTTP, a
second plan shows no change, destroy removes everything."""

from __future__ import annotations

import json

import pytest
import requests
from botocore.exceptions import ClientError

from alonzo_helpers import ROLE, error_code, make_zip, unique_name
from terraform_harness import make_terraform, needs_terraform, provider_block

pytestmark = needs_terraform

APP = """
def handler(event, context):
    return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "tf " + event["rawPath"]}
"""


def main_tf(server, name: str) -> str:
    return provider_block(server) + f"""
resource "aws_lambda_function" "f" {{
  function_name    = "{name}"
  role             = "{ROLE}"
  handler          = "app.handler"
  runtime          = "python3.11"
  filename         = "fn.zip"
  source_code_hash = filebase64sha256("fn.zip")
}}

resource "aws_lambda_function_url" "url" {{
  function_name      = aws_lambda_function.f.function_name
  authorization_type = "NONE"

  cors {{
    allow_origins  = ["https://app.example"]
    allow_methods  = ["GET", "POST"]
    allow_headers  = ["x-custom"]
    expose_headers = ["x-out"]
    max_age        = 300
  }}
}}

resource "aws_lambda_permission" "s3" {{
  statement_id  = "AllowS3"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.f.function_name
  principal     = "s3.amazonaws.com"
  source_arn    = "arn:aws:s3:::some-bucket"
}}

resource "aws_lambda_permission" "url_public" {{
  statement_id           = "AllowPublicUrl"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.f.function_name
  principal              = "*"
  function_url_auth_type = "NONE"
}}

output "url" {{
  value = aws_lambda_function_url.url.function_url
}}
"""


@pytest.fixture
def tf(server, tmp_path):
    return make_terraform(server, tmp_path)


def test_terraform_function_url_and_permissions(server, lambda_client, tf):
    name = unique_name("tfurl")
    (tf.workdir / "fn.zip").write_bytes(make_zip([("app.py", APP)]))
    (tf.workdir / "main.tf").write_text(main_tf(server, name))

    tf("init")
    tf("apply", "-auto-approve")

    url = tf("output", "-raw", "url").stdout.strip()
    assert url == lambda_client.get_function_url_config(FunctionName=name)["FunctionUrl"]
    r = requests.get(url + "hello", timeout=60)
    assert (r.status_code, r.text) == (200, "tf /hello")
    pre = requests.options(url, headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}, timeout=30)
    assert pre.headers["Access-Control-Allow-Origin"] == "https://app.example"

    sids = {s["Sid"] for s in json.loads(lambda_client.get_policy(FunctionName=name)["Policy"])["Statement"]}
    assert {"AllowS3", "AllowPublicUrl"} <= sids

    # A second plan sees no drift.
    tf("plan", "-detailed-exitcode")

    tf("destroy", "-auto-approve")
    with pytest.raises(ClientError) as ei:
        lambda_client.get_function(FunctionName=name)
    assert error_code(ei.value) == "ResourceNotFoundException"
    assert requests.get(url, timeout=30).status_code == 403
