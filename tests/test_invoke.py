"""Synchronous, asynchronous and dry-run Invoke of python3.11 and nodejs20.x functions.

Drives the shared server through boto3 and the AWS CLI, and reads the function logs the
server stores under `<data_dir>/logs/aws-lambda-<name>/` (one file per execution
environment, each line `<epoch ms> <text>`).
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from alonzo_helpers import (
    assert_lambda_error,
    aws_cli,
    create_function,
    error_code,
    fn_path,
    http_status,
    make_zip,
    poll_until,
    run,
    sign_and_send,
    unique_name,
    wait_updated,
)

# --------------------------------------------------------------------------------------
# Function code
# --------------------------------------------------------------------------------------

PY_APP = r'''
import json
import os
import sys
import time
import uuid

BOOT_ID = uuid.uuid4().hex
COUNT = 0


def handler(event, context):
    global COUNT
    COUNT += 1
    action = event.get("action", "echo") if isinstance(event, dict) else "echo"
    if action == "echo":
        return event
    if action == "none":
        return None
    if action == "print":
        print(event["text"])
        return {"printed": True}
    if action == "spam":
        for i in range(event["lines"]):
            print("spam-%05d-%s" % (i, "y" * 100))
        return {"spammed": event["lines"]}
    if action == "context":
        cc = context.client_context
        client_context = None
        if cc is not None:
            client_context = {
                "custom": cc.custom,
                "env": cc.env,
                "installation_id": getattr(cc.client, "installation_id", None) if cc.client else None,
            }
        return {
            "aws_request_id": context.aws_request_id,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "invoked_function_arn": context.invoked_function_arn,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "client_context": client_context,
        }
    if action == "environ":
        return {"env": dict(os.environ), "cwd": os.getcwd()}
    if action == "state":
        return {"boot": BOOT_ID, "pid": os.getpid(), "count": COUNT}
    if action == "sleep":
        time.sleep(event["seconds"])
        return {"boot": BOOT_ID, "slept": event["seconds"]}
    if action == "raise":
        return 1 / 0
    if action == "exit":
        sys.stdout.flush()
        os._exit(3)
    if action == "oom" or action == "alloc":
        hog = []
        for _ in range(event.get("mb", 600)):
            hog.append(b"x" * (1 << 20))  # every page written, so it is really resident
        return len(hog)
    if action == "big":
        return "x" * event["size"]
    if action == "size":
        return {"len": len(event["data"])}
    raise ValueError("unknown action " + action)
'''

NODE_ESM = r'''
const BOOT = Math.random().toString(16).slice(2);
export const handler = async (event, context) => {
  if (event.action === 'throw') throw new TypeError('bad thing: ' + event.text);
  if (event.action === 'error') throw new Error('plain failure');
  if (event.action === 'context') {
    return {
      awsRequestId: context.awsRequestId,
      functionName: context.functionName,
      functionVersion: context.functionVersion,
      memoryLimitInMB: context.memoryLimitInMB,
      invokedFunctionArn: context.invokedFunctionArn,
      remaining: context.getRemainingTimeInMillis(),
      logGroupName: context.logGroupName,
      logStreamName: context.logStreamName,
      execEnv: process.env.AWS_EXECUTION_ENV,
      cwd: process.cwd(),
      boot: BOOT,
      clientContext: context.clientContext ?? null,
    };
  }
  console.log('node-saw ' + JSON.stringify(event));
  return { echo: event, boot: BOOT };
};
'''

NODE_CJS = r'''
exports.handler = (event, context, callback) => {
  if (event.fail) return callback(new RangeError('cjs says no'));
  callback(null, { cjs: event, id: context.awsRequestId });
};
'''

# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

START_RE = re.compile(r"START RequestId: (?P<id>[0-9A-Za-z-]+) Version: (?P<version>\S+)")
REPORT_RE = re.compile(
    r"^REPORT RequestId: (?P<id>[0-9A-Za-z-]+)\tDuration: (?P<dur>\d+\.\d{2}) ms\tBilled Duration: (?P<billed>\d+) ms"
    r"\tMemory Size: (?P<mem>\d+) MB\tMax Memory Used: (?P<used>\d+) MB\t(?:Init Duration: (?P<init>\d+\.\d{2}) ms\t)?$",
    re.M,
)
STREAM_RE = re.compile(r"^\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}$")
LOG_LINE_RE = re.compile(r"^(\d{13}) ")


def py_zip(code: str = PY_APP, **extra) -> bytes:
    return make_zip([("app.py", code), *extra.items()])


def new_py(client, code: str = PY_APP, prefix: str = "inv", **overrides) -> str:
    name = unique_name(prefix)
    overrides.setdefault("Timeout", 10)
    create_function(client, name, py_zip(code), **overrides)
    return name


def new_node(client, source: str = NODE_ESM, filename: str = "index.mjs", prefix: str = "node", **overrides) -> str:
    name = unique_name(prefix)
    overrides.setdefault("Timeout", 10)
    create_function(client, name, make_zip([(filename, source)]), Runtime="nodejs20.x", Handler="index.handler", **overrides)
    return name


def invoke(client, name: str, event=None, *, raw: bytes | None = None, **kw):
    """Invokes and returns (response, body bytes)."""
    payload = raw if raw is not None else json.dumps(event if event is not None else {}).encode()
    resp = client.invoke(FunctionName=name, Payload=payload, **kw)
    return resp, resp["Payload"].read()


def invoke_ok(client, name: str, event=None, **kw):
    resp, body = invoke(client, name, event, **kw)
    assert resp["StatusCode"] == 200, resp
    assert "FunctionError" not in resp, f"unexpected function error: {body[:2000]!r}"
    return resp, json.loads(body)


def invoke_err(client, name: str, event=None, **kw):
    resp, body = invoke(client, name, event, **kw)
    assert resp["StatusCode"] == 200, resp
    assert resp.get("FunctionError") == "Unhandled", f"expected a function error, got {resp.get('FunctionError')!r}: {body[:2000]!r}"
    err = json.loads(body)
    assert isinstance(err, dict) and "errorType" in err and "errorMessage" in err, err
    return resp, err


def tail(resp) -> str:
    assert "LogResult" in resp, f"no LogResult in {sorted(resp)}"
    raw = base64.b64decode(resp["LogResult"])
    assert len(raw) <= 4096, f"LogResult carries {len(raw)} bytes (> 4 KB)"
    return raw.decode("utf-8", errors="replace")


def report_of(log: str, rid: str) -> re.Match:
    for m in REPORT_RE.finditer(log):
        if m.group("id") == rid:
            return m
    raise AssertionError(f"no well-formed REPORT line for {rid} in:\n{log!r}")


def start_id(log: str) -> str:
    m = START_RE.search(log)
    assert m, f"no START line in {log!r}"
    assert m.group("version") == "$LATEST", m.group(0)
    return m.group("id")


def log_dir(server, name: str) -> Path:
    return server.data_dir / "logs" / f"aws-lambda-{name}"


def log_files(server, name: str) -> list[Path]:
    d = log_dir(server, name)
    return sorted(d.glob("*.log")) if d.is_dir() else []


def stored_log(server, name: str) -> str:
    return "".join(p.read_text(errors="replace") for p in log_files(server, name))


def started_ids(server, name: str) -> list[str]:
    return [m.group("id") for m in START_RE.finditer(stored_log(server, name))]


# --------------------------------------------------------------------------------------
# Python: success, payloads, context, environment
# --------------------------------------------------------------------------------------


def test_python_echo(lambda_client):
    name = new_py(lambda_client)
    event = {"hello": "world", "n": [1, 2, 3], "nested": {"ü": "ñ", "f": 1.5, "none": None}}
    resp, body = invoke_ok(lambda_client, name, event)
    assert body == event
    assert resp["ExecutedVersion"] == "$LATEST"
    headers = resp["ResponseMetadata"]["HTTPHeaders"]
    assert headers.get("x-amz-executed-version") == "$LATEST", headers
    assert "x-amz-function-error" not in headers
    assert "LogResult" not in resp, "LogResult without LogType=Tail"


def test_python_returns_none_is_null(lambda_client):
    name = new_py(lambda_client)
    resp, body = invoke(lambda_client, name, {"action": "none"})
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, body
    assert body.strip() == b"null"


def test_invoke_by_arn(lambda_client, server):
    name = new_py(lambda_client)
    resp, body = invoke_ok(lambda_client, server.function_arn(name), {"action": "echo", "via": "arn"})
    assert body == {"action": "echo", "via": "arn"}


def test_invoke_latest_qualifier(lambda_client, server):
    name = new_py(lambda_client)
    resp, ctx = invoke_ok(lambda_client, name, {"action": "context"}, Qualifier="$LATEST")
    assert resp["ExecutedVersion"] == "$LATEST"
    assert ctx["invoked_function_arn"] == server.function_arn(name) + ":$LATEST", ctx["invoked_function_arn"]
    with pytest.raises(ClientError) as ei:
        lambda_client.invoke(FunctionName=name, Payload=b"{}", Qualifier="no-such-alias")
    assert error_code(ei.value) == "ResourceNotFoundException"
    assert http_status(ei.value) == 404


def test_empty_payload_is_accepted(lambda_client):
    """The AWS CLI sends no body when --payload is omitted; that is not an invalid request."""
    name = new_py(lambda_client, code="def handler(event, context):\n    return {'type': type(event).__name__}\n")
    resp = lambda_client.invoke(FunctionName=name)
    assert resp["StatusCode"] == 200
    body = resp["Payload"].read()
    assert "FunctionError" not in resp, f"an invoke without payload failed in the runtime: {body[:500]!r}"


def test_delete_and_recreate_does_not_reuse_warm_environment(lambda_client):
    name = unique_name("recreate")
    v1 = "def handler(event, context):\n    return 'v1'\n"
    v2 = "def handler(event, context):\n    return 'v2'\n"
    create_function(lambda_client, name, py_zip(v1))
    assert invoke_ok(lambda_client, name, {})[1] == "v1"
    lambda_client.delete_function(FunctionName=name)
    with pytest.raises(ClientError) as ei:
        lambda_client.invoke(FunctionName=name, Payload=b"{}")
    assert error_code(ei.value) == "ResourceNotFoundException"
    create_function(lambda_client, name, py_zip(v2))
    assert invoke_ok(lambda_client, name, {})[1] == "v2", "the re-created function ran the deleted function's warm environment"


def test_context_fields(lambda_client, server):
    name = new_py(lambda_client, MemorySize=192, Timeout=7)
    resp, ctx = invoke_ok(lambda_client, name, {"action": "context"}, LogType="Tail")
    log = tail(resp)
    rid = start_id(log)
    assert ctx["aws_request_id"] == rid
    assert ctx["function_name"] == name
    assert ctx["function_version"] == "$LATEST"
    assert int(ctx["memory_limit_in_mb"]) == 192
    assert ctx["invoked_function_arn"] == server.function_arn(name)
    assert 0 < ctx["remaining_ms"] <= 7000, ctx["remaining_ms"]
    assert ctx["remaining_ms"] > 5000, f"remaining time {ctx['remaining_ms']} ms right after the start of a 7 s function"
    assert ctx["log_group_name"] == f"/aws/lambda/{name}"
    assert STREAM_RE.match(ctx["log_stream_name"]), ctx["log_stream_name"]
    assert ctx["client_context"] is None


def test_sync_response_request_id_is_the_invocation_id(lambda_client):
    """On Lambda the Invoke response's x-amzn-RequestId is the invocation's request id
    (context.aws_request_id, the START line's RequestId), as it is for Event invokes."""
    name = new_py(lambda_client)
    resp, ctx = invoke_ok(lambda_client, name, {"action": "context"}, LogType="Tail")
    assert ctx["aws_request_id"] == start_id(tail(resp))
    assert resp["ResponseMetadata"]["RequestId"] == ctx["aws_request_id"], "x-amzn-RequestId differs from the invocation id"


def test_client_context_reaches_the_function(lambda_client):
    name = new_py(lambda_client)
    cc = {
        "client": {"installation_id": "inst-42", "app_title": "t", "app_version_name": "1", "app_version_code": "1", "app_package_name": "p"},
        "custom": {"tenant": "blue", "n": "7"},
        "env": {"platform": "linux"},
    }
    encoded = base64.b64encode(json.dumps(cc).encode()).decode()
    _, ctx = invoke_ok(lambda_client, name, {"action": "context"}, ClientContext=encoded)
    assert ctx["client_context"] is not None, "ClientContext did not reach context.client_context"
    assert ctx["client_context"]["custom"] == cc["custom"]
    assert ctx["client_context"]["env"] == cc["env"]
    assert ctx["client_context"]["installation_id"] == "inst-42"


def test_environment_variables_and_cwd(lambda_client, server):
    user_vars = {"MY_VAR": "hello world", "WITH_EQUALS": "a=b=c", "EMPTYISH": " "}
    name = new_py(lambda_client, MemorySize=256, Environment={"Variables": user_vars})
    _, out = invoke_ok(lambda_client, name, {"action": "environ"})
    env, cwd = out["env"], out["cwd"]
    assert cwd == "/var/task"
    expected = {
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
        "_HANDLER": "app.handler",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_REGION": server.region,
        "AWS_DEFAULT_REGION": server.region,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "TZ": ":UTC",
        **user_vars,
    }
    wrong = {k: (v, env.get(k)) for k, v in expected.items() if env.get(k) != v}
    assert not wrong, f"environment variables (expected, got): {wrong}"
    assert STREAM_RE.match(env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")), env.get("AWS_LAMBDA_LOG_STREAM_NAME")
    for key in ("LANG", "PATH", "LD_LIBRARY_PATH"):
        assert env.get(key), f"{key} missing or empty"
    assert "/usr/bin" in env["PATH"].split(":"), env["PATH"]
    leaked = sorted(k for k in env if k.startswith("ALONZO_"))
    assert not leaked, f"server variables leaked into the sandbox: {leaked}"


def test_configuration_update_reaches_new_invocations(lambda_client):
    name = new_py(lambda_client, Environment={"Variables": {"STAGE": "one"}})
    _, out = invoke_ok(lambda_client, name, {"action": "environ"})
    assert out["env"]["STAGE"] == "one"
    lambda_client.update_function_configuration(FunctionName=name, MemorySize=320, Environment={"Variables": {"STAGE": "two"}})
    wait_updated(lambda_client, name)
    _, out = invoke_ok(lambda_client, name, {"action": "environ"})
    assert out["env"]["STAGE"] == "two", "a warm environment kept the old configuration"
    assert out["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "320"
    new_code = "def handler(event, context):\n    return {'code': 'v2'}\n"
    lambda_client.update_function_code(FunctionName=name, ZipFile=py_zip(new_code))
    wait_updated(lambda_client, name)
    _, out = invoke_ok(lambda_client, name, {})
    assert out == {"code": "v2"}, "a warm environment kept running the old code"


# --------------------------------------------------------------------------------------
# Logs: Tail, REPORT, stored streams
# --------------------------------------------------------------------------------------


def test_tail_log_contents_and_order(lambda_client):
    name = new_py(lambda_client)
    marker = f"printed-{uuid.uuid4().hex}"
    resp, _ = invoke_ok(lambda_client, name, {"action": "print", "text": marker}, LogType="Tail")
    log = tail(resp)
    rid = start_id(log)
    assert f"START RequestId: {rid} Version: $LATEST" in log
    end = f"END RequestId: {rid}"
    assert end in log, log
    rep = report_of(log, rid)
    assert log.index("START RequestId") < log.index(marker) < log.index(end) < rep.start(), log
    assert int(rep.group("mem")) == 128
    assert 1 <= int(rep.group("used")) <= 128, rep.group(0)


def test_report_init_duration_only_on_cold_start(lambda_client):
    name = new_py(lambda_client)
    reports = []
    for _ in range(2):
        resp, _ = invoke_ok(lambda_client, name, {"action": "sleep", "seconds": 0.05}, LogType="Tail")
        log = tail(resp)
        reports.append(report_of(log, start_id(log)))
    cold, warm = reports
    assert cold.group("init") is not None, f"cold start without Init Duration: {cold.group(0)!r}"
    assert warm.group("init") is None, f"warm start with Init Duration: {warm.group(0)!r}"
    assert float(cold.group("init")) > 0
    for rep in reports:
        dur, billed = float(rep.group("dur")), int(rep.group("billed"))
        assert dur >= 50.0, f"Duration {dur} ms for a handler that slept 50 ms"
        assert dur < 5000.0
        init = float(rep.group("init") or 0)
        # Billed is the duration rounded up to 1 ms (Lambda also bills init for some runtimes).
        assert math.ceil(dur) <= billed <= math.ceil(dur + init) + 1, rep.group(0)


def test_tail_is_the_last_4kb(lambda_client, server):
    name = new_py(lambda_client)
    resp, out = invoke_ok(lambda_client, name, {"action": "spam", "lines": 200}, LogType="Tail")
    assert out == {"spammed": 200}
    log = tail(resp)  # asserts <= 4096 bytes
    assert len(log.encode()) > 3000, f"the tail of a 23 KB log is only {len(log)} bytes"
    assert "START RequestId" not in log, "a 23 KB log's last 4 KB cannot include START"
    assert "spam-00199-" in log
    assert "spam-00000-" not in log
    assert REPORT_RE.search(log), log[-500:]
    # The stored stream keeps everything.
    poll_until(lambda: "spam-00000-" in stored_log(server, name) and "REPORT RequestId" in stored_log(server, name),
               10, what="full log in the stream file")


def test_stored_log_stream_format(lambda_client, server):
    name = new_py(lambda_client)
    t0 = int(time.time() * 1000)
    markers = [f"stream-{uuid.uuid4().hex}" for _ in range(2)]
    rids = []
    for m in markers:
        resp, _ = invoke_ok(lambda_client, name, {"action": "print", "text": m}, LogType="Tail")
        rids.append(start_id(tail(resp)))

    def complete():
        text = stored_log(server, name)
        return text if all(f"REPORT RequestId: {r}" in text for r in rids) else None

    text = poll_until(complete, 10, what="START/END/REPORT of both invocations in the stored log")
    files = log_files(server, name)
    assert len(files) == 1, f"two warm invocations of one environment wrote {len(files)} streams: {files}"
    lines = text.splitlines()
    t1 = int(time.time() * 1000)
    for line in lines:
        m = LOG_LINE_RE.match(line)
        assert m, f"log line without an epoch-ms prefix: {line!r}"
        assert t0 - 60_000 <= int(m.group(1)) <= t1 + 60_000, line
    for m, rid in zip(markers, rids):
        assert any(line.endswith(f"START RequestId: {rid} Version: $LATEST") for line in lines), rid
        assert any(line.endswith(f"END RequestId: {rid}") for line in lines), rid
        assert any(line.endswith(m) for line in lines), m
    stamps = [int(LOG_LINE_RE.match(line).group(1)) for line in lines]
    assert stamps == sorted(stamps), "log lines are not in time order"


# --------------------------------------------------------------------------------------
# Function errors
# --------------------------------------------------------------------------------------


def test_handler_exception(lambda_client):
    name = new_py(lambda_client)
    resp, err = invoke_err(lambda_client, name, {"action": "raise"}, LogType="Tail")
    assert err["errorType"] == "ZeroDivisionError"
    assert "division by zero" in err["errorMessage"]
    assert isinstance(err.get("stackTrace"), list) and any("app.py" in line for line in err["stackTrace"]), err
    assert resp["ResponseMetadata"]["HTTPHeaders"].get("x-amz-function-error") == "Unhandled"
    assert resp["ExecutedVersion"] == "$LATEST"
    assert "ZeroDivisionError" in tail(resp)
    invoke_ok(lambda_client, name, {"action": "echo"})


def test_import_error(lambda_client):
    name = new_py(lambda_client, code="import module_that_does_not_exist_xyz\n\ndef handler(e, c):\n    return 1\n")
    for _ in range(2):  # an init failure is reported again, the platform does not get stuck
        _, err = invoke_err(lambda_client, name, {})
        assert err["errorType"] == "Runtime.ImportModuleError", err
        assert "module_that_does_not_exist_xyz" in err["errorMessage"]
    lambda_client.update_function_code(FunctionName=name, ZipFile=py_zip())
    wait_updated(lambda_client, name)
    invoke_ok(lambda_client, name, {"action": "echo"})


def test_handler_not_found(lambda_client):
    name = new_py(lambda_client, Handler="app.no_such_handler")
    _, err = invoke_err(lambda_client, name, {})
    assert err["errorType"] == "Runtime.HandlerNotFound", err
    lambda_client.update_function_configuration(FunctionName=name, Handler="app.handler")
    wait_updated(lambda_client, name)
    invoke_ok(lambda_client, name, {"action": "echo"})


def test_timeout(lambda_client):
    name = new_py(lambda_client, Timeout=1)
    _, before = invoke_ok(lambda_client, name, {"action": "state"})  # warm, so the timing is the deadline's
    t0 = time.monotonic()
    resp, err = invoke_err(lambda_client, name, {"action": "sleep", "seconds": 6}, LogType="Tail")
    elapsed = time.monotonic() - t0
    assert err["errorType"] == "Sandbox.Timedout", err
    assert "Task timed out after 1.00 seconds" in err["errorMessage"], err
    assert 0.9 <= elapsed <= 2.5, f"a 1 s timeout answered after {elapsed:.2f} s"
    log = tail(resp)
    rid = start_id(log)
    assert "Task timed out after 1.00 seconds" in log, log
    assert f"END RequestId: {rid}" in log and report_of(log, rid)
    _, after = invoke_ok(lambda_client, name, {"action": "state"})
    assert after["boot"] != before["boot"], "the timed-out environment was reused"


def test_crash_exit_status(lambda_client, server):
    name = new_py(lambda_client)
    _, before = invoke_ok(lambda_client, name, {"action": "state"})
    _, err = invoke_err(lambda_client, name, {"action": "exit"})
    assert err["errorType"] == "Runtime.ExitError", err
    assert "exit status 3" in err["errorMessage"], err
    resp, after = invoke_ok(lambda_client, name, {"action": "state"}, LogType="Tail")
    assert after["boot"] != before["boot"]
    log = tail(resp)
    assert report_of(log, start_id(log)).group("init") is not None, "the fresh environment's REPORT lacks Init Duration"
    poll_until(lambda: len(log_files(server, name)) == 2, 10, what="a second log stream for the new environment")


def test_out_of_memory(lambda_client):
    name = new_py(lambda_client, MemorySize=128, Timeout=20)
    t0 = time.monotonic()
    _, err = invoke_err(lambda_client, name, {"action": "oom"})
    assert err["errorType"] == "Runtime.OutOfMemory", err
    assert time.monotonic() - t0 < 15
    _, state = invoke_ok(lambda_client, name, {"action": "state"})
    assert state["count"] == 1, "the environment that ran out of memory was reused"


def test_max_memory_used_is_read_afresh_in_a_warm_environment(lambda_client):
    """The report's peak is read again after every invocation of the same environment."""
    name = new_py(lambda_client, MemorySize=512, Timeout=20)
    resp, first = invoke_ok(lambda_client, name, {"action": "state"}, LogType="Tail")
    log = tail(resp)
    small = int(report_of(log, start_id(log)).group("used"))
    assert small < 150, f"Max Memory Used {small} MB for a no-op"
    resp, out = invoke_ok(lambda_client, name, {"action": "alloc", "mb": 250}, LogType="Tail")
    assert out == 250
    log = tail(resp)
    report = report_of(log, start_id(log))
    assert report.group("init") is None, "the second invocation was not warm"
    grown = int(report.group("used"))
    assert 250 <= grown <= 512 and grown > small, f"Max Memory Used {small} MB, then {grown} MB after 250 MB"
    _, again = invoke_ok(lambda_client, name, {"action": "state"})
    assert again["boot"] == first["boot"], "the environment was replaced"


def test_memory_limit_follows_memory_size(lambda_client):
    name = new_py(lambda_client, MemorySize=512, Timeout=20)
    resp, out = invoke_ok(lambda_client, name, {"action": "alloc", "mb": 300}, LogType="Tail")
    assert out == 300
    log = tail(resp)
    used = int(report_of(log, start_id(log)).group("used"))
    assert 300 <= used <= 512, f"Max Memory Used {used} MB after holding 300 MB"
    _, err = invoke_err(lambda_client, name, {"action": "alloc", "mb": 700})
    assert err["errorType"] == "Runtime.OutOfMemory", err


def test_response_too_large(lambda_client):
    name = new_py(lambda_client, MemorySize=512)
    _, err = invoke_err(lambda_client, name, {"action": "big", "size": 7 * 1024 * 1024})
    assert err["errorType"] == "Function.ResponseSizeTooLarge", err
    # Just under the limit is fine.
    resp, body = invoke(lambda_client, name, {"action": "big", "size": 6 * 1024 * 1024 - 64})
    assert "FunctionError" not in resp, body[:500]
    assert len(body) == 6 * 1024 * 1024 - 62
    invoke_ok(lambda_client, name, {"action": "echo"})


# --------------------------------------------------------------------------------------
# Warm reuse and concurrency
# --------------------------------------------------------------------------------------


def test_warm_reuse_same_process(lambda_client):
    name = new_py(lambda_client)
    _, first = invoke_ok(lambda_client, name, {"action": "state"})
    _, second = invoke_ok(lambda_client, name, {"action": "state"})
    assert first["boot"] == second["boot"], "module state did not persist between invocations"
    assert first["pid"] == second["pid"]
    assert (first["count"], second["count"]) == (1, 2)


def test_parallel_invocations_get_separate_environments(lambda_client, server):
    name = new_py(lambda_client)
    client = server.client(max_pool_connections=16)

    def one(_):
        resp, body = invoke_ok(client, name, {"action": "sleep", "seconds": 1})
        return body["boot"]

    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        boots = list(pool.map(one, range(8)))
    wall = time.monotonic() - t0
    assert wall < 4.0, f"8 parallel 1-second invocations took {wall:.2f} s"
    assert len(set(boots)) == 8, f"8 concurrent invocations ran in {len(set(boots))} environments"


# --------------------------------------------------------------------------------------
# Request validation, invocation types
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("invocation_type", ["RequestResponse", "Event"])
def test_payload_not_json(lambda_client, server, invocation_type):
    name = new_py(lambda_client)
    with pytest.raises(ClientError) as ei:
        lambda_client.invoke(FunctionName=name, Payload=b"{this is not json", InvocationType=invocation_type)
    assert error_code(ei.value) == "InvalidRequestContentException"
    assert http_status(ei.value) == 400
    time.sleep(0.5)
    assert started_ids(server, name) == [], "the function ran for a rejected request"


def test_request_too_large(lambda_client, server):
    name = new_py(lambda_client, MemorySize=512)
    body = json.dumps({"action": "size", "data": "z" * (6_500_000)}).encode()
    resp = sign_and_send(server, "POST", fn_path(name, "/invocations"), body)
    assert_lambda_error(resp, status=413, code="RequestEntityTooLargeException")
    # The same through boto3, as an SDK user sees it.
    with pytest.raises(ClientError) as ei:
        lambda_client.invoke(FunctionName=name, Payload=body)
    assert error_code(ei.value) == "RequestEntityTooLargeException"
    assert http_status(ei.value) == 413
    assert started_ids(server, name) == []
    # Just under 6 MB is accepted.
    data = "z" * 6_000_000
    _, out = invoke_ok(lambda_client, name, {"action": "size", "data": data})
    assert out == {"len": len(data)}


def test_async_payload_limit(lambda_client, server):
    """Event invocations carry at most 1 MB (Lambda's asynchronous limit since 2025)."""
    name = new_py(lambda_client)
    big = json.dumps({"action": "print", "text": "x" * 1_100_000}).encode()
    with pytest.raises(ClientError) as ei:
        lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=big)
    assert http_status(ei.value) == 413, ei.value.response
    assert error_code(ei.value) in {"RequestEntityTooLargeException", "RequestTooLargeException"}, ei.value.response
    ok = lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"action": "print", "text": "y" * 900_000}).encode())
    assert ok["StatusCode"] == 202


def test_unknown_function(lambda_client):
    for itype in ("RequestResponse", "Event", "DryRun"):
        with pytest.raises(ClientError) as ei:
            lambda_client.invoke(FunctionName=unique_name("missing"), Payload=b"{}", InvocationType=itype)
        assert error_code(ei.value) == "ResourceNotFoundException", itype
        assert http_status(ei.value) == 404


def test_dry_run(lambda_client, server):
    name = new_py(lambda_client)
    resp = lambda_client.invoke(FunctionName=name, Payload=b'{"action": "print", "text": "dry"}', InvocationType="DryRun")
    assert resp["StatusCode"] == 204
    assert resp["Payload"].read() == b""
    time.sleep(1)
    assert started_ids(server, name) == [], "DryRun executed the function"


def test_event_invocation_runs_in_background(lambda_client, server):
    name = new_py(lambda_client)
    marker = f"async-{uuid.uuid4().hex}"
    resp = lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"action": "print", "text": marker}).encode())
    assert resp["StatusCode"] == 202
    assert resp["Payload"].read() == b""
    rid = resp["ResponseMetadata"]["RequestId"]
    assert rid
    text = poll_until(lambda: (lambda t: t if f"REPORT RequestId: {rid}" in t else None)(stored_log(server, name)),
                      20, what=f"async invocation {rid} in the log")
    assert f"START RequestId: {rid} Version: $LATEST" in text
    assert marker in text


# --------------------------------------------------------------------------------------
# Node.js
# --------------------------------------------------------------------------------------


def test_node_echo_and_context(lambda_client, server):
    name = new_node(lambda_client, MemorySize=160, Timeout=6)
    event = {"hello": "node", "list": [1, {"a": None}]}
    resp, body = invoke_ok(lambda_client, name, event, LogType="Tail")
    assert body["echo"] == event
    assert resp["ExecutedVersion"] == "$LATEST"
    log = tail(resp)
    assert "node-saw " + json.dumps(event, separators=(",", ":")) in log, log
    resp, ctx = invoke_ok(lambda_client, name, {"action": "context"}, LogType="Tail")
    assert ctx["awsRequestId"] == start_id(tail(resp))
    assert ctx["functionName"] == name
    assert ctx["functionVersion"] == "$LATEST"
    assert int(ctx["memoryLimitInMB"]) == 160
    assert ctx["invokedFunctionArn"] == server.function_arn(name)
    assert 0 < ctx["remaining"] <= 6000
    assert ctx["logGroupName"] == f"/aws/lambda/{name}"
    assert STREAM_RE.match(ctx["logStreamName"]), ctx["logStreamName"]
    assert ctx["execEnv"] == "AWS_Lambda_nodejs20.x"
    assert ctx["cwd"] == "/var/task"
    assert ctx["boot"] == body["boot"], "the second invocation did not reuse the warm environment"


def test_node_errors(lambda_client):
    name = new_node(lambda_client)
    _, err = invoke_err(lambda_client, name, {"action": "throw", "text": "xyz"})
    assert err["errorType"] == "TypeError", err
    assert err["errorMessage"] == "bad thing: xyz", err
    assert isinstance(err.get("trace", err.get("stackTrace")), list), err
    _, err = invoke_err(lambda_client, name, {"action": "error"})
    assert err["errorType"] == "Error", err
    assert err["errorMessage"] == "plain failure"
    invoke_ok(lambda_client, name, {"still": "alive"})


def test_node_commonjs_callback_handler(lambda_client):
    name = new_node(lambda_client, source=NODE_CJS, filename="index.js")
    resp, body = invoke_ok(lambda_client, name, {"x": 1}, LogType="Tail")
    assert body == {"cjs": {"x": 1}, "id": start_id(tail(resp))}
    _, err = invoke_err(lambda_client, name, {"fail": True})
    assert err["errorType"] == "RangeError" and err["errorMessage"] == "cjs says no", err


def test_node_timeout_and_next_invoke(lambda_client):
    src = "export const handler = async (e) => { if (e.hang) await new Promise(() => setTimeout(() => {}, 60000)); return 'ok'; };\n"
    name = new_node(lambda_client, source=src, Timeout=1)
    _, err = invoke_err(lambda_client, name, {"hang": True})
    assert err["errorType"] == "Sandbox.Timedout", err
    assert "Task timed out after 1.00 seconds" in err["errorMessage"]
    _, body = invoke_ok(lambda_client, name, {})
    assert body == "ok"


# --------------------------------------------------------------------------------------
# AWS CLI
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _cli_major() -> int:
    p = run(aws_cli() + ["--version"], timeout=60)
    m = re.search(r"aws-cli/(\d+)", p.stdout + p.stderr)
    return int(m.group(1)) if m else 1


def aws(env: dict, *args: str, cwd=None, expect_ok: bool = True):
    env = dict(env)
    env.setdefault("AWS_RETRY_MODE", "standard")
    env.setdefault("AWS_MAX_ATTEMPTS", "1")
    # v2 needs the flag to send a literal JSON payload; v1 sends blobs raw and has no such flag.
    binfmt = ["--cli-binary-format", "raw-in-base64-out"] if _cli_major() >= 2 else []
    cmd = aws_cli() + list(args) + binfmt + ["--output", "json", "--cli-read-timeout", "60"]
    p = run(cmd, env=env, cwd=cwd, timeout=180)
    if expect_ok:
        assert p.returncode == 0, f"{' '.join(args)} failed ({p.returncode}):\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p


def test_cli_invoke(lambda_client, server, tmp_path):
    name = new_py(lambda_client)
    env = server.env
    p = aws(env, "lambda", "invoke", "--function-name", name, "--payload", '{"from": "cli", "n": 5}',
            "--log-type", "Tail", "out.json", cwd=tmp_path)
    meta = json.loads(p.stdout)
    assert meta["StatusCode"] == 200
    assert meta["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in meta
    assert json.loads((tmp_path / "out.json").read_text()) == {"from": "cli", "n": 5}
    log = base64.b64decode(meta["LogResult"]).decode()
    assert report_of(log, start_id(log))

    p = aws(env, "lambda", "invoke", "--function-name", name, "--payload", '{"action": "raise"}', "err.json", cwd=tmp_path)
    meta = json.loads(p.stdout)
    assert meta["StatusCode"] == 200 and meta["FunctionError"] == "Unhandled", meta
    assert json.loads((tmp_path / "err.json").read_text())["errorType"] == "ZeroDivisionError"

    marker = f"cli-async-{uuid.uuid4().hex}"
    p = aws(env, "lambda", "invoke", "--function-name", name, "--invocation-type", "Event",
            "--payload", json.dumps({"action": "print", "text": marker}), "ev.json", cwd=tmp_path)
    assert json.loads(p.stdout)["StatusCode"] == 202
    poll_until(lambda: marker in stored_log(server, name), 20, what="the CLI's Event invocation to run")

    p = aws(env, "lambda", "invoke", "--function-name", name, "--invocation-type", "DryRun", "dry.json", cwd=tmp_path)
    assert json.loads(p.stdout)["StatusCode"] == 204


# --------------------------------------------------------------------------------------
# Runtimes started ahead (pre-started sandboxes) are indistinguishable from fresh ones
# --------------------------------------------------------------------------------------

PROBE_APP = r'''
import os, resource, sys

def handler(event, context):
    st = os.statvfs("/tmp")
    with open("/proc/self/environ", "rb") as f:
        started_with = [e.split(b"=", 1)[0].decode() for e in f.read().split(b"\0") if e]
    return {
        "env": dict(os.environ), "cwd": os.getcwd(), "path": sys.path,
        "tmp_mb": st.f_blocks * st.f_frsize // (1 << 20), "stdin_mode": os.fstat(0).st_mode,
        "ids": [os.getuid(), os.getgid(), os.geteuid()], "pid": os.getpid(), "ppid": os.getppid(),
        "modules": sorted(sys.modules), "argv": sys.argv, "executable": sys.executable,
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "flags": [sys.flags.no_site, sys.flags.ignore_environment],
        "tmp_files": sorted(os.listdir("/tmp")), "task": sorted(os.listdir("/var/task")),
        "started_with_function_env": "AWS_LAMBDA_FUNCTION_NAME" in started_with,
    }
'''

NODE_PROBE_APP = r"""
import fs from 'node:fs';
import { createRequire } from 'node:module';

export const handler = async () => {
  const startedWith = fs.readFileSync('/proc/self/environ').toString().split('\0').map((e) => e.split('=')[0]);
  const st = fs.statfsSync('/tmp');
  return {
    env: { ...process.env }, cwd: process.cwd(), path: createRequire('/var/task/index.mjs').resolve.paths('x'),
    tmp_mb: Math.floor((st.blocks * st.bsize) / 1048576), stdin_mode: fs.fstatSync(0).mode,
    ids: [process.getuid(), process.getgid(), process.geteuid()], pid: process.pid, ppid: process.ppid,
    modules: [], argv: process.argv, executable: process.execPath, nofile: [], flags: process.execArgv,
    tmp_files: fs.readdirSync('/tmp').sort(), task: fs.readdirSync('/var/task').sort(),
    started_with_function_env: startedWith.includes('AWS_LAMBDA_FUNCTION_NAME'),
  };
};
"""

# Varying per function or per environment, not per way of starting.
PER_FUNCTION = {"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "_X_AMZN_TRACE_ID"}


@pytest.mark.parametrize("runtime", ["python3.11", "nodejs20.x"])
def test_prestarted_runtime_is_indistinguishable_from_a_fresh_one(lambda_client, runtime):
    """A Python or Node.js runtime started ahead (its sandbox built and interpreter running before the
    function was known) must look to the function exactly like one started for it. `TZ` in a
    function's environment (set here to the default value) makes the platform start the
    runtime afresh, so the second function is the reference. The only difference allowed is
    /proc/self/environ, which keeps the environment the process started with."""
    new = new_py if runtime.startswith("python") else new_node
    code = PROBE_APP if runtime.startswith("python") else NODE_PROBE_APP
    ahead = new(lambda_client, code, prefix="ahead", EphemeralStorage={"Size": 700},
                Environment={"Variables": {"MY_VAR": "x"}})
    fresh = new(lambda_client, code, prefix="fresh", EphemeralStorage={"Size": 700},
                Environment={"Variables": {"MY_VAR": "x", "TZ": ":UTC"}})
    # The first cold start of a runtime may find no runtime started ahead yet (the pool keeps
    # the kinds in demand); new revisions force new cold starts until one does.
    for attempt in range(10):
        _, got = invoke_ok(lambda_client, ahead)
        if not got["started_with_function_env"]:
            break
        lambda_client.update_function_configuration(
            FunctionName=ahead, Environment={"Variables": {"MY_VAR": "x", "ATTEMPT": str(attempt)}})
        wait_updated(lambda_client, ahead)
        time.sleep(0.5)
    else:
        pytest.fail("no cold start used a runtime started ahead")
    _, ref = invoke_ok(lambda_client, fresh)
    assert ref["started_with_function_env"], "the reference must be a runtime started afresh"
    got["env"].pop("ATTEMPT", None)
    for key in PER_FUNCTION:
        got["env"].pop(key, None)
        ref["env"].pop(key, None)
    assert got["env"] == ref["env"]
    for key in ["cwd", "path", "tmp_mb", "stdin_mode", "ids", "pid", "ppid", "modules", "argv",
                "executable", "nofile", "flags", "tmp_files", "task"]:
        assert got[key] == ref[key], f"{key}: started ahead {got[key]!r} != fresh {ref[key]!r}"
    assert got["tmp_mb"] == 700


BYTECODE_PROBE_APP = r'''
import importlib.util, sys

def handler(event, context):
    module = sys.modules["alonzo_bootstrap"]
    with open(module.__file__, "rb") as f:
        source = f.read()
    try:
        with open(module.__cached__, "rb") as f:
            header = f.read(16)
    except OSError as e:
        return {"file": module.__file__, "cached": module.__cached__, "error": str(e)}
    return {
        "file": module.__file__, "cached": module.__cached__,
        "magic_ok": header[:4] == importlib.util.MAGIC_NUMBER,
        "flags": int.from_bytes(header[4:8], "little"),
        "hash_ok": header[8:16] == importlib.util.source_hash(source),
    }
'''


def test_python_runtime_runs_from_bytecode_compiled_for_its_interpreter(lambda_client):
    """The Python runtime module is not compiled at every cold start: the server compiles it
    once per interpreter into /var/runtime/__pycache__, hash-checked against the source, so
    the interpreter in the sandbox (which cannot write there) loads it from that bytecode."""
    name = new_py(lambda_client, BYTECODE_PROBE_APP, prefix="pyc")
    _, got = invoke_ok(lambda_client, name)
    assert got["file"] == "/var/runtime/alonzo_bootstrap.py", got
    assert got["cached"].startswith("/var/runtime/__pycache__/alonzo_bootstrap.cpython-3"), got
    assert "error" not in got, got
    assert got["magic_ok"], got
    assert got["flags"] == 0b11, f"not checked-hash bytecode: {got}"  # hash-based, checked
    assert got["hash_ok"], f"the bytecode is not that of the source the sandbox sees: {got}"


def test_prebuilt_sandboxes_off_starts_every_runtime_with_its_function(server_factory):
    """`--prebuilt-sandboxes 0` (the bench's baseline): no sandbox is built ahead, so every
    cold start's runtime process starts with the function's environment."""
    srv = server_factory(extra_env={"ALONZO_PREBUILT_SANDBOXES": "0"})
    srv.start()
    client = srv.client()
    name = new_py(client, PROBE_APP, prefix="scratch")
    for attempt in range(3):
        _, got = invoke_ok(client, name)
        assert got["started_with_function_env"], f"cold start {attempt} used a runtime started ahead"
        client.update_function_configuration(FunctionName=name, Environment={"Variables": {"N": str(attempt)}})
        wait_updated(client, name)
