"""Terraform's AWS provider (from the local filesystem mirror) managing an aws_lambda_function."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from alonzo_helpers import ROLE, error_code, python_zip, run, sha256_b64, unique_name

TERRAFORM = shutil.which("terraform")
PLUGIN_MIRROR = Path("/opt/tf-plugins")

pytestmark = pytest.mark.skipif(TERRAFORM is None, reason="the terraform binary is not installed on this machine")

CLI_CONFIG = f"""
provider_installation {{
  filesystem_mirror {{
    path    = "{PLUGIN_MIRROR}"
    include = ["registry.terraform.io/*/*"]
  }}
  direct {{
    exclude = ["registry.terraform.io/*/*"]
  }}
}}
"""


def main_tf(server, name: str, memory: int) -> str:
    return f"""
terraform {{
  required_providers {{
    aws = {{
      source = "hashicorp/aws"
    }}
  }}
}}

provider "aws" {{
  region                      = "{server.region}"
  access_key                  = "{server.access_key}"
  secret_key                  = "{server.secret_key}"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  max_retries                 = 2

  endpoints {{
    lambda = "{server.endpoint}"
  }}
}}

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


class Terraform:
    def __init__(self, workdir: Path, env: dict):
        self.workdir = workdir
        self.env = env

    def __call__(self, *args: str, ok_codes=(0,)) -> subprocess.CompletedProcess:
        cmd, *rest = args
        t0 = time.monotonic()
        p = run([TERRAFORM, cmd, "-no-color", *rest], env=self.env, cwd=self.workdir, timeout=300)
        print(f"terraform {' '.join(args)}: {time.monotonic() - t0:.1f}s")
        assert p.returncode in ok_codes, f"terraform {' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout[-6000:]}\nstderr:\n{p.stderr[-6000:]}"
        return p


@pytest.fixture
def tf(server, tmp_path):
    if not PLUGIN_MIRROR.exists():
        pytest.fail(f"terraform is installed but the provider mirror {PLUGIN_MIRROR} is missing")
    cli_config = tmp_path / "terraform.rc"
    cli_config.write_text(CLI_CONFIG)
    env = dict(server.env)
    env.update(
        TF_CLI_CONFIG_FILE=str(cli_config),
        CHECKPOINT_DISABLE="1",
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        TF_DATA_DIR=str(tmp_path / ".terraform"),
    )
    work = tmp_path / "work"
    work.mkdir()
    return Terraform(work, env)


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
