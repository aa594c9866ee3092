"""Terraform's AWS provider (from the local filesystem mirror) managing an aws_lambda_function."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from alonzo_helpers import ROLE, error_code, python_zip, sha256_b64, unique_name
from terraform_harness import make_terraform, needs_terraform, provider_block

pytestmark = needs_terraform


def main_tf(server, name: str, memory: int) -> str:
    return provider_block(server) + f"""

resource "aws_lambda_function" "fn" {{
  function_name    = "{name}"
  role             = "{ROLE}"
  handler          = "app.handler"
  runtime          = "python3.11"
  filename         = "fn.zip"
  source_code_hash = filebase64sha256("fn.zip")
  memory_size      = {memory}
  timeout          = 10
  description      = "managed by terraform"

  environment {{
    variables = {{
      GREETING = "hello"
    }}
  }}

  tags = {{
    managed = "terraform"
  }}
}}

output "arn" {{
  value = aws_lambda_function.fn.arn
}}
"""


@pytest.fixture
def tf(server, tmp_path):
    return make_terraform(server, tmp_path)


def test_terraform_apply_plan_destroy(server, lambda_client, tf):
    name = unique_name("tf")
    z1 = python_zip()
    (tf.workdir / "fn.zip").write_bytes(z1)
    (tf.workdir / "main.tf").write_text(main_tf(server, name, 256))

    tf("init")
    tf("apply", "-auto-approve")

    got = lambda_client.get_function(FunctionName=name)
    cfg = got["Configuration"]
    assert cfg["CodeSha256"] == sha256_b64(z1)
    assert cfg["MemorySize"] == 256
    assert cfg["Timeout"] == 10
    assert cfg["Description"] == "managed by terraform"
    assert cfg["Environment"]["Variables"] == {"GREETING": "hello"}
    assert cfg["State"] == "Active"
    assert got["Tags"].get("managed") == "terraform"
    assert tf("output", "-raw", "arn").stdout.strip() == server.function_arn(name)

    # A second plan sees no drift.
    tf("plan", "-detailed-exitcode")

    # A configuration change and new code (source_code_hash changes) in one apply: an
    # UpdateFunctionConfiguration and an UpdateFunctionCode, after which the plan converges.
    z2 = python_zip()
    (tf.workdir / "fn.zip").write_bytes(z2)
    (tf.workdir / "main.tf").write_text(main_tf(server, name, 512))
    tf("apply", "-auto-approve")
    cfg = lambda_client.get_function_configuration(FunctionName=name)
    assert cfg["MemorySize"] == 512
    assert cfg["CodeSha256"] == sha256_b64(z2)
    tf("plan", "-detailed-exitcode")

    tf("destroy", "-auto-approve")
    with pytest.raises(ClientError) as ei:
        lambda_client.get_function(FunctionName=name)
    assert error_code(ei.value) == "ResourceNotFoundException"
    names = {f["FunctionName"] for p in lambda_client.get_paginator("list_functions").paginate() for f in p["Functions"]}
    assert name not in names
