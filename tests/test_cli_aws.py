"""The unmodified AWS CLI (v1, from pip) against Alonzo, configured only through AWS_* settings."""

from __future__ import annotations

import json
import subprocess

import requests

from alonzo_helpers import ROLE, aws_cli, python_zip, run, sha256_b64, unique_name


def aws(env: dict, *args: str, cwd=None, expect_ok: bool = True) -> subprocess.CompletedProcess:
    env = dict(env)
    env.setdefault("AWS_RETRY_MODE", "standard")
    env.setdefault("AWS_MAX_ATTEMPTS", "1")
    cmd = aws_cli() + list(args) + ["--output", "json", "--cli-connect-timeout", "10", "--cli-read-timeout", "60"]
    p = run(cmd, env=env, cwd=cwd, timeout=180)
    if expect_ok:
        assert p.returncode == 0, f"{' '.join(args)} failed ({p.returncode}):\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p


def aws_json(env: dict, *args: str, cwd=None) -> dict:
    out = aws(env, *args, cwd=cwd).stdout
    return json.loads(out) if out.strip() else {}


def test_cli_function_lifecycle(server, tmp_path):
    env = server.env
    name = unique_name("cli")
    z1 = python_zip()
    (tmp_path / "fn.zip").write_bytes(z1)

    created = aws_json(
        env, "lambda", "create-function", "--function-name", name, "--runtime", "python3.11",
        "--role", ROLE, "--handler", "app.handler", "--zip-file", "fileb://fn.zip",
        "--description", "from the cli", "--timeout", "15", "--tags", "owner=cli",
        cwd=tmp_path,
    )
    assert created["FunctionName"] == name
    assert created["CodeSha256"] == sha256_b64(z1)
    assert created["CodeSize"] == len(z1)
    assert created["FunctionArn"] == server.function_arn(name)

    aws(env, "lambda", "wait", "function-active-v2", "--function-name", name)

    got = aws_json(env, "lambda", "get-function", "--function-name", name)
    assert got["Configuration"]["State"] == "Active"
    assert got["Configuration"]["Description"] == "from the cli"
    assert got["Configuration"]["Timeout"] == 15
    assert got["Tags"] == {"owner": "cli"}
    assert requests.get(got["Code"]["Location"], timeout=30).content == z1

    z2 = python_zip()
    (tmp_path / "fn2.zip").write_bytes(z2)
    upd = aws_json(env, "lambda", "update-function-code", "--function-name", name, "--zip-file", "fileb://fn2.zip", cwd=tmp_path)
    assert upd["CodeSha256"] == sha256_b64(z2)
    aws(env, "lambda", "wait", "function-updated-v2", "--function-name", name)

    conf = aws_json(
        env, "lambda", "update-function-configuration", "--function-name", name,
        "--memory-size", "256", "--environment", "Variables={GREETING=hello,COUNT=3}",
    )
    assert conf["MemorySize"] == 256
    assert conf["Environment"]["Variables"] == {"GREETING": "hello", "COUNT": "3"}
    aws(env, "lambda", "wait", "function-updated-v2", "--function-name", name)

    cfg = aws_json(env, "lambda", "get-function-configuration", "--function-name", server.function_arn(name))
    assert cfg["CodeSha256"] == sha256_b64(z2)
    assert cfg["MemorySize"] == 256
    assert cfg["LastUpdateStatus"] == "Successful"

    listed = aws_json(env, "lambda", "list-functions")
    assert name in {f["FunctionName"] for f in listed["Functions"]}
    # --page-size 1 makes the CLI walk every Marker itself.
    paged = aws_json(env, "lambda", "list-functions", "--page-size", "1")
    paged_names = [f["FunctionName"] for f in paged["Functions"]]
    assert name in paged_names
    assert len(paged_names) == len(set(paged_names))
    assert sorted(paged_names) == sorted(f["FunctionName"] for f in listed["Functions"])

    settings = aws_json(env, "lambda", "get-account-settings")
    assert settings["AccountUsage"]["FunctionCount"] >= 1

    aws(env, "lambda", "delete-function", "--function-name", name)
    p = aws(env, "lambda", "get-function", "--function-name", name, expect_ok=False)
    assert p.returncode != 0
    assert "ResourceNotFoundException" in p.stderr, p.stderr
    listed = aws_json(env, "lambda", "list-functions")
    assert name not in {f["FunctionName"] for f in listed["Functions"]}


def test_cli_reports_server_errors(server, tmp_path):
    env = server.env
    (tmp_path / "fn.zip").write_bytes(python_zip())
    p = aws(
        env, "lambda", "create-function", "--function-name", unique_name("cli"), "--runtime", "cobol",
        "--role", ROLE, "--handler", "app.handler", "--zip-file", "fileb://fn.zip",
        cwd=tmp_path, expect_ok=False,
    )
    assert p.returncode != 0
    assert "InvalidParameterValueException" in p.stderr, p.stderr

    bad = dict(env, AWS_SECRET_ACCESS_KEY=env["AWS_SECRET_ACCESS_KEY"] + "wrong")
    p = aws(bad, "lambda", "list-functions", expect_ok=False)
    assert p.returncode != 0
    assert "InvalidSignatureException" in p.stderr, p.stderr


def test_cli_with_named_profile(server, tmp_path):
    creds = tmp_path / "credentials"
    creds.write_text(f"[alonzo-test]\naws_access_key_id = {server.access_key}\naws_secret_access_key = {server.secret_key}\n")
    config = tmp_path / "config"
    config.write_text(f"[profile alonzo-test]\nregion = {server.region}\nendpoint_url = {server.endpoint}\n")
    env = dict(server.env)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"):
        env.pop(k)
    env.update(AWS_PROFILE="alonzo-test", AWS_SHARED_CREDENTIALS_FILE=str(creds), AWS_CONFIG_FILE=str(config))
    out = aws_json(env, "lambda", "list-functions", "--max-items", "1")
    assert "Functions" in out
    assert len(out["Functions"]) <= 1
