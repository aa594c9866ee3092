"""Custom runtimes (`provided*`): the function's own `bootstrap` speaks the Runtime API.

Three real clients of the Runtime API: the classic bash + curl loop from AWS's tutorial,
a Rust binary built with the official `lambda_runtime` crate (tests/fixtures/rust-echo),
and AWS's Python runtime interface client `awslambdaric` from PyPI.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from alonzo_helpers import REPO, bootstrap_zip, create_function, make_zip, unique_name

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE_TARGET = REPO / "target" / "fixtures"
START_RE = re.compile(r"START RequestId: (?P<id>[0-9A-Za-z-]+) Version: \$LATEST")


def exe(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o100755 << 16
    info.create_system = 3
    return info


def invoke(client, name, event, **kw):
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event).encode(), **kw)
    body = resp["Payload"].read()
    assert resp["StatusCode"] == 200, resp
    return resp, body


def invoke_ok(client, name, event, **kw):
    resp, body = invoke(client, name, event, **kw)
    assert "FunctionError" not in resp, f"function error: {body[:3000]!r}"
    return resp, json.loads(body)


def invoke_err(client, name, event, **kw):
    resp, body = invoke(client, name, event, **kw)
    assert resp.get("FunctionError") == "Unhandled", f"expected a function error, got {body[:3000]!r}"
    return resp, json.loads(body)


def tail_start_id(resp) -> str:
    log = base64.b64decode(resp["LogResult"]).decode("utf-8", "replace")
    m = START_RE.search(log)
    assert m, log
    assert "REPORT RequestId: " + m.group("id") in log, log
    return m.group("id")


def create_provided(client, zip_bytes: bytes, runtime: str = "provided.al2023", **kw) -> str:
    name = unique_name(kw.pop("prefix", "custom"))
    kw.setdefault("Timeout", 10)
    create_function(client, name, zip_bytes, Runtime=runtime, Handler="not.used", **kw)
    return name


# --------------------------------------------------------------------------------------
# bash + curl
# --------------------------------------------------------------------------------------

SHELL_BOOTSTRAP = r'''#!/bin/bash
set -euo pipefail
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  HEADERS="$(mktemp)"
  EVENT_DATA=$(curl -sS -LD "$HEADERS" "$API/invocation/next")
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  ARN=$(grep -Fi Lambda-Runtime-Invoked-Function-Arn "$HEADERS" | tr -d '[:space:]' | cut -d: -f2-)
  DEADLINE=$(grep -Fi Lambda-Runtime-Deadline-Ms "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  rm -f "$HEADERS"
  echo "shell handling $REQUEST_ID"
  case "$EVENT_DATA" in
    *'"raw"'*)
      curl -sS -X POST "$API/invocation/$REQUEST_ID/response" --data-binary 'plain text, not JSON' >/dev/null ;;
    *'"misuse"'*)
      BOGUS=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$API/invocation/00000000-0000-0000-0000-000000000000/response" -d '{"stolen":true}')
      curl -sS -X POST "$API/invocation/$REQUEST_ID/response" -d "{\"bogus_status\":$BOGUS}" >/dev/null
      AGAIN=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$API/invocation/$REQUEST_ID/response" -d '{"twice":true}')
      echo "second-post-status $AGAIN" ;;
    *'"fail"'*)
      curl -sS -X POST "$API/invocation/$REQUEST_ID/error" \
        -H "Lambda-Runtime-Function-Error-Type: Custom.ShellFailure" \
        -d '{"errorMessage":"shell says no","errorType":"Custom.ShellFailure"}' >/dev/null ;;
    *)
      RESPONSE="{\"echo\":$EVENT_DATA,\"request_id\":\"$REQUEST_ID\",\"arn\":\"$ARN\",\"deadline\":$DEADLINE,\"exec_env\":\"${AWS_EXECUTION_ENV:-absent}\",\"pwd\":\"$(pwd)\",\"uid\":$(id -u),\"pid\":$$}"
      curl -sS -X POST "$API/invocation/$REQUEST_ID/response" -d "$RESPONSE" >/dev/null ;;
  esac
done
'''

INIT_ERROR_BOOTSTRAP = r'''#!/bin/bash
curl -sS -X POST "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/init/error" \
  -H "Lambda-Runtime-Function-Error-Type: Runtime.ConfigInvalid" \
  -d '{"errorMessage":"init broke on purpose","errorType":"Runtime.ConfigInvalid"}' >/dev/null
exit 1
'''


def need_curl():
    if not (Path("/usr/bin/curl").exists() and Path("/bin/bash").exists()):
        pytest.skip("needs /usr/bin/curl and /bin/bash on the host (they are bound into the sandbox)")


@pytest.mark.parametrize("runtime", ["provided", "provided.al2", "provided.al2023"])
def test_shell_bootstrap(lambda_client, server, runtime):
    need_curl()
    name = create_provided(lambda_client, make_zip([(exe("bootstrap"), SHELL_BOOTSTRAP)]), runtime=runtime, Timeout=9)
    event = {"hello": "shell", "n": [1, 2, 3]}
    t0 = time.time() * 1000
    resp, out = invoke_ok(lambda_client, name, event, LogType="Tail")
    assert out["echo"] == event
    assert out["request_id"] == tail_start_id(resp)
    assert out["arn"] == server.function_arn(name)
    assert t0 < out["deadline"] <= time.time() * 1000 + 9000 + 1000, (t0, out["deadline"])
    assert out["exec_env"] == "absent", "AWS_EXECUTION_ENV must not be set for provided runtimes"
    assert out["pwd"] == "/var/task"
    assert out["uid"] == 993
    assert "shell handling " + out["request_id"] in base64.b64decode(resp["LogResult"]).decode()
    # Warm: the same bash process serves the next event.
    _, again = invoke_ok(lambda_client, name, {"second": True})
    assert again["echo"] == {"second": True} and again["pid"] == out["pid"]
    assert again["request_id"] != out["request_id"]
    # The error path.
    _, err = invoke_err(lambda_client, name, {"fail": True})
    assert err["errorMessage"] == "shell says no", err
    assert err["errorType"] == "Custom.ShellFailure", err
    _, after = invoke_ok(lambda_client, name, {"after": "error"})
    assert after["echo"] == {"after": "error"}


def test_shell_raw_response_and_runtime_api_misuse(lambda_client):
    need_curl()
    name = create_provided(lambda_client, make_zip([(exe("bootstrap"), SHELL_BOOTSTRAP)]))
    resp, body = invoke(lambda_client, name, {"raw": True})
    assert "FunctionError" not in resp, body
    assert body == b"plain text, not JSON", "the response bytes were not passed through unchanged"
    # A response for a request id that is not the current one is refused with 400, and
    # answering twice is refused too; the real answer still goes through.
    resp, out = invoke_ok(lambda_client, name, {"misuse": True}, LogType="Tail")
    assert out == {"bogus_status": 400}, out
    _, nxt = invoke_ok(lambda_client, name, {"next": 1})  # the second POST was logged before this /next
    assert nxt["echo"] == {"next": 1}
    log = base64.b64decode(resp["LogResult"]).decode()
    m = re.search(r"second-post-status (\d+)", log)
    assert m, log
    assert m.group(1) in {"400", "403"}, f"a second response for the same request id answered {m.group(1)}"


def test_bootstrap_that_exits_without_serving(lambda_client):
    name = create_provided(lambda_client, bootstrap_zip())  # `exit 0` before calling /next
    _, err = invoke_err(lambda_client, name, {})
    assert err["errorType"] == "Runtime.ExitError", err


def test_bootstrap_init_error(lambda_client):
    need_curl()
    name = create_provided(lambda_client, make_zip([(exe("bootstrap"), INIT_ERROR_BOOTSTRAP)]))
    for _ in range(2):
        _, err = invoke_err(lambda_client, name, {})
        assert err.get("errorMessage") == "init broke on purpose", err
        assert err.get("errorType") == "Runtime.ConfigInvalid", err


# --------------------------------------------------------------------------------------
# Rust (`lambda_runtime`)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rust_bootstrap() -> bytes:
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not installed")
    manifest = FIXTURES / "rust-echo" / "Cargo.toml"
    env = dict(os.environ, CARGO_TARGET_DIR=str(FIXTURE_TARGET))
    p = subprocess.run([cargo, "build", "--release", "--manifest-path", str(manifest)], env=env,
                       capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, f"building the rust-echo fixture failed:\n{p.stderr[-5000:]}"
    binary = FIXTURE_TARGET / "release" / "bootstrap"
    assert binary.is_file()
    return binary.read_bytes()


def test_rust_lambda_runtime(lambda_client, server, rust_bootstrap):
    name = create_provided(lambda_client, make_zip([(exe("bootstrap"), rust_bootstrap)]), MemorySize=144, Timeout=8)
    event = {"hello": "rust", "nested": {"list": [1, None, "x"]}}
    t0 = time.time() * 1000
    resp, out = invoke_ok(lambda_client, name, event, LogType="Tail")
    assert out["event"] == event
    assert out["request_id"] == tail_start_id(resp)
    assert out["invoked_function_arn"] == server.function_arn(name)
    assert out["function_name"] == name
    assert out["memory"] == "144"
    assert t0 < int(out["deadline_ms"]) <= time.time() * 1000 + 8000 + 1000
    resp2, out2 = invoke_ok(lambda_client, name, {"second": 2}, LogType="Tail")
    assert out2["event"] == {"second": 2}
    assert out2["request_id"] == tail_start_id(resp2) != out["request_id"]
    _, err = invoke_err(lambda_client, name, {"fail": "on purpose"})
    assert "rust-echo failure: on purpose" in err.get("errorMessage", ""), err
    _, out3 = invoke_ok(lambda_client, name, {"after": "error"})
    assert out3["event"] == {"after": "error"}


# --------------------------------------------------------------------------------------
# Python's awslambdaric
# --------------------------------------------------------------------------------------

RIC_APP = '''
import os

def handler(event, context):
    if event.get("fail"):
        raise KeyError("ric says no")
    return {
        "echo": event,
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "function_name": context.function_name,
        "remaining": context.get_remaining_time_in_millis(),
        "exec_env": os.environ.get("AWS_EXECUTION_ENV", "absent"),
    }
'''

RIC_BOOTSTRAP = "#!/bin/sh\ncd /var/task\nexec /usr/bin/python3.11 -m awslambdaric app.handler\n"


@pytest.fixture(scope="module")
def ric_package() -> Path:
    if not Path("/usr/bin/python3.11").exists():
        pytest.skip("no /usr/bin/python3.11 on the host to run awslambdaric in the sandbox")
    pkg = FIXTURE_TARGET / "awslambdaric-pkg"
    if not (pkg / "awslambdaric").is_dir():
        tmp = FIXTURE_TARGET / f"awslambdaric-pkg.tmp-{uuid.uuid4().hex[:8]}"
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(tmp),
               "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
               "--platform", "manylinux2014_x86_64", "awslambdaric"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            pytest.skip(f"could not install awslambdaric from PyPI: {p.stderr[-1500:]}")
        if pkg.exists():
            shutil.rmtree(pkg)
        tmp.rename(pkg)
    return pkg


def zip_tree(root: Path, extra: list) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_dir() or "__pycache__" in path.parts or path.name.endswith(".pyc"):
                continue
            rel = path.relative_to(root).as_posix()
            info = zipfile.ZipInfo(rel)
            info.create_system = 3
            info.external_attr = ((0o100755 if os.access(path, os.X_OK) else 0o100644) << 16)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
        for name, data in extra:
            if isinstance(name, zipfile.ZipInfo):
                name.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(name, data)
    return buf.getvalue()


def test_awslambdaric(lambda_client, server, ric_package):
    z = zip_tree(ric_package, [("app.py", RIC_APP), (exe("bootstrap"), RIC_BOOTSTRAP)])
    name = create_provided(lambda_client, z, Timeout=10, MemorySize=256)
    event = {"hello": "ric", "k": [True, False]}
    resp, out = invoke_ok(lambda_client, name, event, LogType="Tail")
    assert out["echo"] == event
    assert out["request_id"] == tail_start_id(resp)
    assert out["arn"] == server.function_arn(name)
    assert out["function_name"] == name
    assert 0 < out["remaining"] <= 10000
    assert out["exec_env"] == "absent"
    _, err = invoke_err(lambda_client, name, {"fail": True})
    assert err["errorType"] == "KeyError", err
    assert "ric says no" in err["errorMessage"], err
    _, out2 = invoke_ok(lambda_client, name, {"after": "error"})
    assert out2["echo"] == {"after": "error"}
