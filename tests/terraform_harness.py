"""Running Terraform with the AWS provider from the machine's local mirror (/opt/tf-plugins)
against a test server: the CLI configuration, the environment, and a small runner that
fails with Terraform's output."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from alonzo_helpers import run

TERRAFORM = shutil.which("terraform")
PLUGIN_MIRROR = Path("/opt/tf-plugins")

needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="the terraform binary is not installed on this machine")

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


def provider_block(server, *services: str) -> str:
    """The `terraform` and `provider "aws"` blocks pointing `services` (default: lambda) at
    `server`, with every AWS-account lookup turned off."""
    endpoints = "\n".join(f'    {s} = "{server.endpoint}"' for s in (services or ("lambda",)))
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
{endpoints}
  }}
}}
"""


class Terraform:
    """`terraform <cmd> -no-color …` in one working directory, asserting the exit code."""

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


def make_terraform(server, tmp_path: Path) -> Terraform:
    """A Terraform runner pointed at `server`, reading providers only from the mirror."""
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
