"""The Python and Node.js bootstraps against a fake Runtime API (see conftest.py).

Each test starts a real bootstrap process over a temporary task root and checks what it
posts to the Runtime API and what it writes to stdout.
"""

import base64
import json
import re
import subprocess
import sys
import time

import pytest

from bootstrap_harness import ARN, FUNCTION_NAME, NODE, PYTHON_BOOTSTRAP, PYTHON_RUNTIME

CLIENT_CONTEXT = {
    "client": {"installation_id": "inst-1", "app_title": "Demo", "app_version_name": "1.0",
               "app_version_code": "10", "app_package_name": "com.example"},
    "custom": {"k": "v"},
    "env": {"platform": "Android"},
}
IDENTITY = {"cognitoIdentityId": "us-east-1:abc", "cognitoIdentityPoolId": "us-east-1:pool"}
TRACE = "Root=1-5e34a614-10bdxmplf1fb44f07bc535a1;Parent=07f5xmpl2d1f6f85;Sampled=1"
CONTEXT_HEADERS = {
    "Lambda-Runtime-Trace-Id": TRACE,
    "Lambda-Runtime-Client-Context": json.dumps(CLIENT_CONTEXT),
    "Lambda-Runtime-Cognito-Identity": json.dumps(IDENTITY),
}
ISO_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def assert_init_error(rt, error_type, exit_code=None):
    """The bootstrap posts one init error of ``error_type`` and exits non-zero."""
    posted = rt.api.wait_posted()
    assert posted.kind == "init_error", posted
    assert posted.headers["lambda-runtime-function-error-type"] == error_type
    body = posted.json()
    assert body["errorType"] == error_type
    code = rt.wait_exit()
    assert code != 0
    if exit_code is not None:
        assert code == exit_code
    assert rt.api.next_calls == 0
    return body


# =======================================================================================
# Python
# =======================================================================================

PY_CONTEXT_APP = '''
import os, time

def handler(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(0.05)
    second = context.get_remaining_time_in_millis()
    cc = context.client_context
    return {
        "event": event,
        "aws_request_id": context.aws_request_id,
        "invoked_function_arn": context.invoked_function_arn,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining": [first, second],
        "client": cc and {"installation_id": cc.client.installation_id,
                          "app_title": cc.client.app_title, "custom": cc.custom, "env": cc.env},
        "identity": [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id],
        "tenant_id": context.tenant_id,
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
    }
'''


def test_python_echo_and_context(start):
    rt = start("python", {"app.py": PY_CONTEXT_APP}, "app.handler")
    event = {"key": "value", "n": [1, 2.5, None, True], "s": "h\u00e9llo"}
    posted = rt.invoke(event, request_id="req-1", headers=dict(CONTEXT_HEADERS, **{
        "Lambda-Runtime-Aws-Tenant-Id": "tenant-7"}))
    assert posted.kind == "response"
    assert posted.headers["content-type"] == "application/json"
    out = posted.json()
    assert out["event"] == event
    assert out["aws_request_id"] == "req-1"
    assert out["invoked_function_arn"] == ARN
    assert out["function_name"] == FUNCTION_NAME
    assert out["function_version"] == "$LATEST"
    assert out["memory_limit_in_mb"] == "256"
    assert out["log_group_name"] == "/aws/lambda/" + FUNCTION_NAME
    assert out["log_stream_name"].startswith("2026/01/01/[$LATEST]")
    first, second = out["remaining"]
    assert 0 < second < first <= 3000
    assert first - second >= 40
    assert out["client"] == {"installation_id": "inst-1", "app_title": "Demo",
                             "custom": {"k": "v"}, "env": {"platform": "Android"}}
    assert out["identity"] == ["us-east-1:abc", "us-east-1:pool"]
    assert out["tenant_id"] == "tenant-7"
    assert out["trace"] == TRACE

    # Without the optional headers: no client context, empty identity, no trace id.
    out = rt.invoke({"x": 1}).json()
    assert out["client"] is None
    assert out["identity"] == [None, None]
    assert out["tenant_id"] is None
    assert out["trace"] is None


def test_python_state_persists_on_one_connection(start):
    app = '''
import sys
calls = []

def handler(event, context):
    calls.append(event["n"])
    return {"calls": calls, "same_module": sys.modules["app"] is sys.modules[__name__],
            "lazy": {m: m in sys.modules for m in ("logging", "http.client", "decimal", "traceback")}}
'''
    rt = start("python", {"app.py": app}, "app.handler")
    assert rt.invoke({"n": 1}).json()["calls"] == [1]
    out = rt.invoke({"n": 2}).json()
    assert out["calls"] == [1, 2]
    assert out["same_module"] is True
    # The runtime itself pulls in none of these heavy modules.
    assert out["lazy"] == {"logging": False, "http.client": False, "decimal": False, "traceback": False}
    assert rt.invoke({"n": 3}).json()["calls"] == [1, 2, 3]
    assert rt.api.connections == 1  # one keep-alive connection for everything
    assert rt.proc.poll() is None


def test_python_handler_exception(start):
    app = '''
def handler(event, context):
    return helper(event)

def helper(event):
    return 1 / 0
'''
    rt = start("python", {"app.py": app}, "app.handler")
    posted = rt.invoke({}, request_id="req-err")
    assert posted.kind == "error"
    assert posted.headers["lambda-runtime-function-error-type"] == "ZeroDivisionError"
    body = posted.json()
    assert set(body) == {"errorMessage", "errorType", "requestId", "stackTrace"}
    assert body["errorType"] == "ZeroDivisionError"
    assert body["errorMessage"] == "division by zero"
    assert body["requestId"] == "req-err"
    trace = body["stackTrace"]
    assert len(trace) == 2  # the runtime's own frames are cut off
    assert re.match(r'  File "[^"]*/app\.py", line 3, in handler\n    return helper\(event\)\n$', trace[0])
    assert re.match(r'  File "[^"]*/app\.py", line 6, in helper\n    return 1 / 0\n$', trace[1])
    cause = json.loads(posted.headers["lambda-runtime-function-xray-error-cause"])
    assert cause["exceptions"][0]["type"] == "ZeroDivisionError"
    # AWS's log record of the failure: one line, \r between the traceback lines.
    out = rt.wait_stdout("[ERROR] ZeroDivisionError: division by zero\rTraceback (most recent call last):\r")
    assert "\u00a0\u00a0File " in out
    # The process carries on.
    assert rt.invoke({}).kind == "error"
    assert rt.proc.poll() is None


def test_python_import_error_missing_module(start):
    rt = start("python", {"app.py": "def handler(e, c):\n    return 1\n"}, "nope.handler")
    body = assert_init_error(rt, "Runtime.ImportModuleError", exit_code=1)
    assert body["errorMessage"] == "Unable to import module 'nope': No module named 'nope'"
    assert body["stackTrace"] == []
    assert "[ERROR] Runtime.ImportModuleError: Unable to import module 'nope'" in rt.stdout


def test_python_import_error_missing_dependency(start):
    rt = start("python", {"app.py": "import not_installed_dep\n"}, "app.handler")
    body = assert_init_error(rt, "Runtime.ImportModuleError")
    assert body["errorMessage"] == "Unable to import module 'app': No module named 'not_installed_dep'"


def test_python_handler_not_found(start):
    rt = start("python", {"app.py": "def other(e, c):\n    return 1\n"}, "app.handler")
    body = assert_init_error(rt, "Runtime.HandlerNotFound")
    assert body["errorMessage"] == "Handler 'handler' missing on module 'app'"


def test_python_malformed_handler(start):
    rt = start("python", {"app.py": "def handler(e, c):\n    return 1\n"}, "app")
    body = assert_init_error(rt, "Runtime.MalformedHandlerName")
    assert body["errorMessage"] == "Bad handler 'app': not enough values to unpack (expected 2, got 1)"


def test_python_builtin_module_conflict(start):
    rt = start("python", {}, "sys.handler")
    body = assert_init_error(rt, "Runtime.BuiltInModuleConflict")
    assert body["errorMessage"] == "Cannot use built-in module sys as a handler module"


def test_python_syntax_error(start):
    rt = start("python", {"app.py": "def handler(event, context)\n    return 1\n"}, "app.handler")
    body = assert_init_error(rt, "Runtime.UserCodeSyntaxError")
    assert body["errorMessage"].startswith("Syntax error in module 'app': ")
    assert "app.py" in body["stackTrace"][0] and "Line 1" in body["stackTrace"][0]


def test_python_module_level_exception(start):
    rt = start("python", {"app.py": "x = 1\nraise ValueError('bad config')\n"}, "app.handler")
    body = assert_init_error(rt, "ValueError")
    assert body["errorMessage"] == "bad config"
    assert any("app.py" in t and "line 2" in t for t in body["stackTrace"])


@pytest.mark.parametrize("handler", ["pkg/sub/mod.handler", "pkg.sub.mod.handler"])
def test_python_nested_handlers(start, handler):
    files = {
        "pkg/__init__.py": "",
        "pkg/sub/mod.py": "from . import helper\n\ndef handler(e, c):\n    return [__name__, helper.VALUE]\n",
        "pkg/sub/helper.py": "VALUE = 42\n",
    }
    rt = start("python", files, handler)
    assert rt.invoke({}).json() == ["pkg.sub.mod", 42]


def test_python_marshalling(start):
    app = '''
import decimal

def handler(event, context):
    kind = event["kind"]
    if kind == "set":
        return {1, 2}
    if kind == "none":
        return None
    if kind == "decimal":
        return {"price": decimal.Decimal("19.990"), "big": decimal.Decimal("1E+30"),
                "list": [decimal.Decimal("-0.5")], "text": "1.5"}
    if kind == "bytes":
        return b"raw\\x00bytes"
    if kind == "event":
        return event
'''
    rt = start("python", {"app.py": app}, "app.handler")
    posted = rt.invoke({"kind": "set"}, request_id="req-m")
    assert posted.kind == "error"
    assert posted.headers["lambda-runtime-function-error-type"] == "Runtime.MarshalError"
    body = posted.json()
    assert body["errorType"] == "Runtime.MarshalError"
    assert body["errorMessage"] == "Unable to marshal response: Object of type set is not JSON serializable"
    assert body["requestId"] == "req-m"
    assert rt.invoke({"kind": "none"}).body == b"null"
    posted = rt.invoke({"kind": "decimal"})
    assert posted.body == b'{"price": 19.990, "big": 1E+30, "list": [-0.5], "text": "1.5"}'
    posted = rt.invoke({"kind": "bytes"})
    assert posted.kind == "response" and posted.body == b"raw\x00bytes"
    # Bad input JSON: Runtime.UnmarshalError; no payload at all: the empty object.
    posted = rt.invoke(raw=b"{not json")
    assert posted.kind == "error"
    assert posted.json()["errorType"] == "Runtime.UnmarshalError"
    assert posted.json()["errorMessage"].startswith("Unable to unmarshal input: ")
    posted = rt.invoke(raw=b"")
    assert posted.kind == "error"  # {}["kind"] -> KeyError, raised by the handler itself
    assert posted.json()["errorType"] == "KeyError"


def test_python_logging_and_print(start):
    app = '''
import logging
import sys

logger = logging.getLogger("my.module")

def handler(event, context):
    print("printed", event["n"])
    logger.warning("warned %s", event["n"])
    logger.info("informed")  # below the default level, as on Lambda
    logging.getLogger().error("line one\\nline two")
    sys.stderr.write("to stderr\\n")
    return "ok"
'''
    rt = start("python", {"app.py": app}, "app.handler")
    rt.invoke({"n": 1}, request_id="req-log")
    out = rt.wait_stdout("line two")
    assert "printed 1\n" in out
    assert re.search(r"^\[WARNING\]\t" + ISO_MS + r"\treq-log\twarned 1$", out, re.M), out
    assert re.search(r"^\[ERROR\]\t" + ISO_MS + r"\treq-log\tline one\nline two$", out, re.M), out
    assert "informed" not in out
    deadline = time.time() + 5
    while "to stderr" not in rt.stderr and time.time() < deadline:
        time.sleep(0.01)
    assert "to stderr\n" in rt.stderr


def test_python_logging_imported_in_handler_and_level(start):
    # logging imported only inside the handler still gets the Lambda handler; the level
    # comes from AWS_LAMBDA_LOG_LEVEL.
    app = '''
def handler(event, context):
    import logging
    logging.getLogger().debug("hidden debug")
    logging.getLogger().info("shown info")
    return len(logging.getLogger().handlers)
'''
    rt = start("python", {"app.py": app}, "app.handler", env={"AWS_LAMBDA_LOG_LEVEL": "info"})
    assert rt.invoke({}, request_id="req-lvl").json() == 1
    out = rt.wait_stdout("shown info")
    assert re.search(r"^\[INFO\]\t" + ISO_MS + r"\treq-lvl\tshown info$", out, re.M)
    assert "hidden debug" not in out


def test_python_json_logs(start):
    app = '''
import logging

def handler(event, context):
    logging.getLogger("svc").info("hello %s", "json", extra={"orderId": 7})
    print("plain print")
    raise RuntimeError("failed")
'''
    rt = start("python", {"app.py": app}, "app.handler", env={"AWS_LAMBDA_LOG_FORMAT": "JSON"})
    rt.invoke({}, request_id="req-json")
    out = rt.wait_stdout('"errorType": "RuntimeError"')
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    info = next(r for r in records if r.get("message") == "hello json")
    assert info["level"] == "INFO" and info["logger"] == "svc" and info["requestId"] == "req-json"
    assert info["orderId"] == 7
    assert re.match(ISO_MS + "$", info["timestamp"])
    error = next(r for r in records if r.get("errorType") == "RuntimeError")
    assert error["level"] == "ERROR" and error["errorMessage"] == "failed"
    assert "plain print" in out.splitlines()


@pytest.mark.parametrize("level,shown", [
    ("TRACE", ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
    ("WARN", ["WARNING", "ERROR", "CRITICAL"]),
    ("FATAL", ["CRITICAL"]),
])
def test_python_json_application_log_levels(start, level, shown):
    # Lambda's ApplicationLogLevel names (TRACE…FATAL) filter Python's logging records.
    app = '''
import logging

def handler(event, context):
    log = logging.getLogger("lv")
    log.debug("m"); log.info("m"); log.warning("m"); log.error("m"); log.critical("m")
    print("done")
'''
    rt = start("python", {"app.py": app}, "app.handler", env={"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": level})
    rt.invoke({}, request_id="req-lv")
    out = rt.wait_stdout("done")
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["level"] for r in records] == shown


def test_python_sys_path(start):
    app = '''
import sys, os

def handler(event, context):
    return sys.path[:3] + [os.getcwd()]
'''
    rt = start("python", {"app.py": app}, "app.handler")
    paths = rt.invoke({}).json()
    assert paths[0] == paths[3]  # the task root (also the working directory) comes first
    assert re.match(r"/opt/python/lib/python3\.\d+/site-packages$", paths[1])
    assert paths[2] == "/opt/python"


def test_python_runtime_api_gone(start):
    # If the Runtime API answers /next with an error, the runtime exits.
    rt = start("python", {"app.py": "def handler(e, c):\n    return 1\n"}, "app.handler")
    assert rt.invoke({}).kind == "response"
    rt.api.stopping = True
    assert rt.wait_exit() != 0


# =======================================================================================
# Node.js
# =======================================================================================

NODE_CONTEXT_APP = '''
exports.handler = async (event, context) => {
  const first = context.getRemainingTimeInMillis();
  await new Promise((r) => setTimeout(r, 50));
  const second = context.getRemainingTimeInMillis();
  return {
    event,
    awsRequestId: context.awsRequestId,
    invokedFunctionArn: context.invokedFunctionArn,
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    memoryLimitInMB: context.memoryLimitInMB,
    logGroupName: context.logGroupName,
    logStreamName: context.logStreamName,
    remaining: [first, second],
    clientContext: context.clientContext ?? 'none',
    identity: context.identity ?? 'none',
    waits: context.callbackWaitsForEmptyEventLoop,
    legacy: [typeof context.done, typeof context.succeed, typeof context.fail],
    trace: process.env._X_AMZN_TRACE_ID ?? 'unset',
  };
};
'''


def test_node_echo_and_context(start):
    rt = start("node", {"index.js": NODE_CONTEXT_APP}, "index.handler")
    event = {"key": "value", "n": [1, 2.5, None, True], "s": "h\u00e9llo"}
    posted = rt.invoke(event, request_id="req-1", headers=CONTEXT_HEADERS)
    assert posted.kind == "response"
    out = posted.json()
    assert out["event"] == event
    assert out["awsRequestId"] == "req-1"
    assert out["invokedFunctionArn"] == ARN
    assert out["functionName"] == FUNCTION_NAME
    assert out["functionVersion"] == "$LATEST"
    assert out["memoryLimitInMB"] == "256"
    assert out["logGroupName"] == "/aws/lambda/" + FUNCTION_NAME
    assert out["logStreamName"].startswith("2026/01/01/[$LATEST]")
    first, second = out["remaining"]
    assert 0 < second < first <= 3000
    assert first - second >= 40
    assert out["clientContext"] == CLIENT_CONTEXT
    assert out["identity"] == IDENTITY
    assert out["waits"] is True
    assert out["legacy"] == ["function", "function", "function"]
    assert out["trace"] == TRACE
    out = rt.invoke({}).json()
    assert out["clientContext"] == "none" and out["identity"] == "none" and out["trace"] == "unset"


def test_node_state_persists_on_one_connection(start):
    app = "let calls = [];\nexports.handler = async (event) => { calls.push(event.n); return calls; };\n"
    rt = start("node", {"index.js": app}, "index.handler")
    assert rt.invoke({"n": 1}).json() == [1]
    assert rt.invoke({"n": 2}).json() == [1, 2]
    assert rt.invoke({"n": 3}).json() == [1, 2, 3]
    assert rt.api.connections == 1
    assert rt.proc.poll() is None


def test_node_handler_errors(start):
    app = '''
class CustomError extends Error { constructor(m) { super(m); this.name = 'CustomError'; } }
exports.handler = async (event) => {
  if (event.kind === 'error') throw new CustomError('went wrong');
  if (event.kind === 'string') throw 'just a string';
  if (event.kind === 'object') throw { code: 42 };
  if (event.kind === 'sync') return helper();
  return 'fine';
};
function helper() { null.boom(); }
exports.sync = (event) => helper();
'''
    rt = start("node", {"index.js": app}, "index.handler")
    posted = rt.invoke({"kind": "error"}, request_id="req-e")
    assert posted.kind == "error"
    assert posted.headers["lambda-runtime-function-error-type"] == "CustomError"
    body = posted.json()
    assert set(body) == {"errorType", "errorMessage", "trace"}
    assert body["errorType"] == "CustomError"
    assert body["errorMessage"] == "went wrong"
    assert body["trace"][0] == "CustomError: went wrong"
    assert re.match(r"\s+at exports\.handler \(.*/index\.js:4:\d+\)", body["trace"][1])
    out = rt.wait_stdout("Invoke Error")
    line = next(line for line in out.splitlines() if "Invoke Error" in line)
    ts, rid, level, msg = line.split("\t", 3)
    assert re.match(ISO_MS + "$", ts) and rid == "req-e" and level == "ERROR"
    assert msg.startswith("Invoke Error \t{")
    logged = json.loads(msg.split("\t", 1)[1])
    assert logged["errorType"] == "CustomError" and logged["errorMessage"] == "went wrong"

    body = rt.invoke({"kind": "string"}).json()
    assert body == {"errorType": "string", "errorMessage": "just a string", "trace": []}
    body = rt.invoke({"kind": "object"}).json()
    assert body == {"errorType": "object", "errorMessage": "[object Object]", "trace": []}
    body = rt.invoke({"kind": "sync"}).json()
    assert body["errorType"] == "TypeError"
    assert any("index.js:10" in t for t in body["trace"])
    assert rt.invoke({"kind": "none"}).json() == "fine"


def test_node_sync_handler_throwing(start):
    app = "exports.handler = (event, context) => { throw new RangeError('sync throw'); };\n"
    rt = start("node", {"index.js": app}, "index.handler")
    body = rt.invoke({}).json()
    assert body["errorType"] == "RangeError" and body["errorMessage"] == "sync throw"
    assert rt.invoke({}).kind == "error"


def test_node_import_error(start):
    rt = start("node", {"index.js": "exports.handler = async () => 1;\n"}, "nope.handler")
    body = assert_init_error(rt, "Runtime.ImportModuleError", exit_code=129)
    assert body["errorMessage"].startswith("Error: Cannot find module 'nope'")
    assert body["trace"][0].startswith("Runtime.ImportModuleError: Error: Cannot find module 'nope'")
    assert "Uncaught Exception" in rt.wait_stdout("Uncaught Exception")


def test_node_missing_dependency(start):
    rt = start("node", {"index.js": "require('not-installed-dep');\nexports.handler = async () => 1;\n"},
               "index.handler")
    body = assert_init_error(rt, "Runtime.ImportModuleError")
    assert "Cannot find module 'not-installed-dep'" in body["errorMessage"]


def test_node_handler_not_found(start):
    app = "exports.value = 42;\nexports.handler = async () => 1;\n"
    rt = start("node", {"index.js": app}, "index.missing")
    body = assert_init_error(rt, "Runtime.HandlerNotFound")
    assert body["errorMessage"] == "index.missing is undefined or not exported"
    rt = start("node", {"index.js": app}, "index.value")
    body = assert_init_error(rt, "Runtime.HandlerNotFound")
    assert body["errorMessage"] == "index.value is not a function"


def test_node_malformed_handler(start):
    rt = start("node", {"index.js": "exports.handler = async () => 1;\n"}, "index")
    body = assert_init_error(rt, "Runtime.MalformedHandlerName")
    assert body["errorMessage"] == "Bad handler"
    rt = start("node", {"index.js": "exports.handler = async () => 1;\n"}, "../index.handler")
    body = assert_init_error(rt, "Runtime.MalformedHandlerName")
    assert "is not a valid handler name" in body["errorMessage"]


@pytest.mark.parametrize("filename", ["index.js", "index.mjs"])
def test_node_syntax_error(start, filename):
    source = "export const handler = async () => {\n  return (1 + ;\n};\n"
    if filename.endswith(".js"):
        source = "exports.handler = async () => {\n  return (1 + ;\n};\n"
    rt = start("node", {filename: source}, "index.handler")
    body = assert_init_error(rt, "Runtime.UserCodeSyntaxError")
    assert body["errorMessage"].startswith("SyntaxError: ")
    if filename.endswith(".js"):
        # Node puts the file in a CommonJS SyntaxError's stack (not in an ES module's).
        assert any(filename in line for line in body["trace"]), body


def test_node_module_level_exception(start):
    rt = start("node", {"index.js": "throw new TypeError('bad config');\n"}, "index.handler")
    body = assert_init_error(rt, "TypeError", exit_code=129)
    assert body["errorMessage"] == "bad config"
    assert any("index.js" in line for line in body["trace"])


@pytest.mark.parametrize("files,handler,expected", [
    ({"index.js": "exports.handler = async () => 'cjs';\n"}, "index.handler", "cjs"),
    ({"index.cjs": "module.exports.handler = async () => 'cjs-ext';\n"}, "index.handler", "cjs-ext"),
    ({"index.mjs": "export const handler = async () => 'esm-mjs';\n"}, "index.handler", "esm-mjs"),
    ({"package.json": '{"type": "module"}', "index.js": "export const handler = async () => 'esm-js';\n"},
     "index.handler", "esm-js"),
    ({"src/lib/app.js": "exports.main = async () => 'nested';\n"}, "src/lib/app.main", "nested"),
    ({"src/app.mjs": "export const ns = { inner: { fn: async () => 'deep' } };\n"},
     "src/app.ns.inner.fn", "deep"),
    ({"lib/package.json": '{"type": "module"}',
      "lib/esm.js": "import { v } from './dep.js';\nexport const handler = async () => v;\n",
      "lib/dep.js": "export const v = 'esm-dep';\n"}, "lib/esm.handler", "esm-dep"),
    ({"node_modules/some-lib/index.js": "exports.handler = async () => 'resolved';\n"},
     "some-lib.handler", "resolved"),
])
def test_node_module_kinds(start, files, handler, expected):
    rt = start("node", files, handler)
    assert rt.invoke({}).json() == expected


def test_node_callback_handlers(start):
    app = '''
exports.ok = (event, context, callback) => { callback(null, { got: event.n }); };
exports.err = (event, context, callback) => { callback(new Error('cb failure')); };
exports.strErr = (event, context, callback) => { callback('plain failure'); };
exports.later = (event, context, callback) => {
  setTimeout(() => callback(null, 'later'), 20);
};
exports.waits = (event, context, callback) => {
  // The response is held until the event loop is empty (the timer has run).
  const t0 = Date.now();
  setTimeout(() => { globalThis.timerRan = Date.now() - t0; }, 300);
  callback(null, 'waited');
};
exports.noWait = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = false;
  setTimeout(() => {}, 300);
  callback(null, 'immediate');
};
exports.timerRan = async () => globalThis.timerRan ?? null;
exports.noAnswer = (event, context) => { /* neither returns nor calls back */ };
exports.legacy = (event, context) => { context.succeed({ legacy: true }); };
exports.legacyFail = (event, context) => { context.fail(new Error('legacy failure')); };
exports.twice = (event, context, callback) => { callback(null, 'first'); callback(null, 'second'); };
'''
    files = {"index.js": app}
    rt = start("node", files, "index.ok")
    assert rt.invoke({"n": 5}).json() == {"got": 5}

    rt = start("node", files, "index.err")
    body = rt.invoke({}).json()
    assert body["errorType"] == "Error" and body["errorMessage"] == "cb failure"

    rt = start("node", files, "index.strErr")
    assert rt.invoke({}).json() == {"errorType": "string", "errorMessage": "plain failure", "trace": []}

    rt = start("node", files, "index.later")
    assert rt.invoke({}).json() == "later"

    rt = start("node", files, "index.waits")
    t0 = time.time()
    assert rt.invoke({}).json() == "waited"
    assert time.time() - t0 >= 0.28

    rt = start("node", files, "index.noWait")
    t0 = time.time()
    assert rt.invoke({}).json() == "immediate"
    assert time.time() - t0 < 0.25

    rt = start("node", files, "index.noAnswer")
    posted = rt.invoke({})
    assert posted.kind == "response" and posted.body == b"null"
    assert rt.invoke({}).body == b"null"

    rt = start("node", files, "index.legacy")
    assert rt.invoke({}).json() == {"legacy": True}
    rt = start("node", files, "index.legacyFail")
    assert rt.invoke({}).json()["errorMessage"] == "legacy failure"

    rt = start("node", files, "index.twice")
    assert rt.invoke({}).json() == "first"
    assert rt.invoke({}).json() == "first"  # the second call was ignored; still serving


def test_node_promises_and_results(start):
    app = '''
exports.promise = (event) => new Promise((resolve) => setTimeout(() => resolve({ p: event.n }), 10));
exports.rejects = () => Promise.reject(new Error('rejected'));
exports.undef = async () => undefined;
exports.circular = async () => { const a = {}; a.self = a; return a; };
exports.never = async () => new Promise(() => {});
'''
    files = {"index.js": app}
    rt = start("node", files, "index.promise")
    assert rt.invoke({"n": 3}).json() == {"p": 3}
    rt = start("node", files, "index.rejects")
    assert rt.invoke({}).json()["errorMessage"] == "rejected"
    rt = start("node", files, "index.undef")
    assert rt.invoke({}).body == b"null"
    rt = start("node", files, "index.circular")
    body = rt.invoke({}).json()
    assert body["errorMessage"] == "Unable to stringify response body"
    rt = start("node", files, "index.never")
    body = rt.invoke({}).json()
    assert body["errorType"] == "Runtime.NodeJsExit"
    assert rt.invoke({}).kind == "error"  # and the runtime keeps serving


def test_node_event_parsing(start):
    rt = start("node", {"index.js": "exports.handler = async (e) => e;\n"}, "index.handler")
    assert rt.invoke(raw=b"").json() == {}
    assert rt.invoke(raw=b'"a string"').json() == "a string"
    assert rt.invoke(raw=b"[1,2]").json() == [1, 2]
    body = rt.invoke(raw=b"{bad").json()
    assert body["errorType"] == "SyntaxError"


def test_node_unhandled_rejection_fails_invocation_and_exits(start):
    app = '''
exports.handler = async () => {
  Promise.reject(new Error('nobody caught me'));
  await new Promise((r) => setTimeout(r, 100));
  return 'unreachable';
};
'''
    rt = start("node", {"index.js": app}, "index.handler")
    posted = rt.invoke({}, request_id="req-unh")
    assert posted.kind == "error"
    assert posted.headers["lambda-runtime-function-error-type"] == "Runtime.UnhandledPromiseRejection"
    body = posted.json()
    assert body["errorType"] == "Runtime.UnhandledPromiseRejection"
    assert body["errorMessage"] == "Error: nobody caught me"
    assert rt.wait_exit() == 128


def test_node_uncaught_exception_fails_invocation_and_exits(start):
    app = '''
exports.handler = (event, context, callback) => {
  setTimeout(() => { throw new Error('thrown from a timer'); }, 10);
};
'''
    rt = start("node", {"index.js": app}, "index.handler")
    posted = rt.invoke({})
    assert posted.kind == "error"
    body = posted.json()
    assert body["errorType"] == "Error" and body["errorMessage"] == "thrown from a timer"
    assert rt.wait_exit() == 129
    assert "Uncaught Exception" in rt.stdout


def test_node_console_format(start):
    app = '''
exports.handler = async (event) => {
  console.log('log', { a: 1 }, 42);
  console.info('info');
  console.warn('warn');
  console.error('error', new Error('shown'));
  console.debug('debug');
  console.log('multi\\nline');
  return 'ok';
};
'''
    rt = start("node", {"index.js": app}, "index.handler")
    rt.invoke({}, request_id="req-con")
    out = rt.wait_stdout("multi\rline")
    lines = {}
    for line in out.split("\n")[:-1]:  # (str.splitlines would also split at \r)
        ts, rid, level, msg = line.split("\t", 3)
        assert re.match(ISO_MS + "$", ts)
        assert rid == "req-con"
        lines[msg.split("\r")[0].split(" ")[0]] = (level, msg)
    assert lines["log"] == ("INFO", "log { a: 1 } 42")
    assert lines["info"][0] == "INFO"
    assert lines["warn"][0] == "WARN"
    assert lines["error"][0] == "ERROR" and "Error: shown" in lines["error"][1]
    assert lines["debug"][0] == "DEBUG"
    assert lines["multi"] == ("INFO", "multi\rline")


def test_node_json_logs_and_level(start):
    app = '''
exports.handler = async () => {
  console.debug('filtered out');
  console.info('hello', 'json');
  console.warn({ structured: true });
  return 'ok';
};
'''
    rt = start("node", {"index.js": app}, "index.handler",
               env={"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"})
    rt.invoke({}, request_id="req-j")
    out = rt.wait_stdout("structured")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["level"] for r in records] == ["INFO", "WARN"]
    assert records[0]["message"] == "hello json" and records[0]["requestId"] == "req-j"
    assert re.match(ISO_MS + "$", records[0]["timestamp"])
    assert records[1]["message"] == {"structured": True}


def test_node_log_level_filter_text(start):
    app = "exports.handler = async () => { console.info('quiet'); console.error('loud'); return 1; };\n"
    rt = start("node", {"index.js": app}, "index.handler", env={"AWS_LAMBDA_LOG_LEVEL": "WARN"})
    rt.invoke({})
    out = rt.wait_stdout("loud")
    assert "quiet" not in out


def test_node_module_paths(start):
    app = "exports.handler = async () => process.env.NODE_PATH;\n"
    rt = start("node", {"index.js": app}, "index.handler",
               env={"NODE_PATH": "/opt/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:/var/task"})
    paths = rt.invoke({}).json().split(":")
    major = subprocess.run([NODE, "-p", "process.versions.node.split('.')[0]"], capture_output=True,
                           text=True).stdout.strip()
    assert paths[:2] == ["/opt/nodejs/node%s/node_modules" % major, "/opt/nodejs/node_modules"]


def test_node_nodepath_resolution(start, tmp_path):
    # A module found only through NODE_PATH (as layers in /opt/nodejs are).
    layer = tmp_path / "layer" / "node_modules" / "layer-lib"
    layer.mkdir(parents=True)
    (layer / "index.js").write_text("module.exports = 'from layer';\n")
    app = "const lib = require('layer-lib');\nexports.handler = async () => lib;\n"
    rt = start("node", {"index.js": app}, "index.handler",
               env={"NODE_PATH": str(tmp_path / "layer" / "node_modules")})
    assert rt.invoke({}).json() == "from layer"


def test_node_response_streaming(start):
    app = '''
exports.handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  if (event.http) {
    responseStream = awslambda.HttpResponseStream.from(responseStream, { statusCode: 201, headers: { a: 'b' } });
  } else {
    responseStream.setContentType('text/plain');
  }
  responseStream.write('hello ');
  await new Promise((r) => setTimeout(r, 10));
  if (event.fail) throw new Error('mid-stream failure');
  responseStream.write(context.awsRequestId);
  responseStream.end();
});
'''
    rt = start("node", {"index.js": app}, "index.handler")
    posted = rt.invoke({}, request_id="req-s")
    assert posted.kind == "response"
    assert posted.headers["lambda-runtime-function-response-mode"] == "streaming"
    assert posted.headers["content-type"] == "text/plain"
    assert posted.body == b"hello req-s"

    posted = rt.invoke({"http": True}, request_id="req-h")
    assert posted.headers["content-type"] == "application/vnd.awslambda.http-integration-response"
    prelude, _, rest = posted.body.partition(b"\x00" * 8)
    assert json.loads(prelude) == {"statusCode": 201, "headers": {"a": "b"}}
    assert rest == b"hello req-h"

    posted = rt.invoke({"fail": True})
    assert posted.body == b"hello "
    assert posted.headers["lambda-runtime-function-error-type"] == "Error"
    error = json.loads(base64.b64decode(posted.headers["lambda-runtime-function-error-body"]))
    assert error["errorMessage"] == "mid-stream failure"
    assert rt.invoke({}).body.startswith(b"hello ")  # still serving


# =======================================================================================
# Both
# =======================================================================================

ECHO = {"app.py": "def handler(e, c):\n    return e\n", "app.js": "exports.handler = async (e) => e;\n"}


@pytest.mark.parametrize("lang", ["python", "node"])
def test_large_payloads(start, lang):
    rt = start(lang, ECHO, "app.handler")
    event = {"blob": "x" * (3 << 20), "items": list(range(20000))}
    posted = rt.invoke(event)
    assert posted.kind == "response"
    assert posted.json() == event
    assert rt.invoke({"small": True}).json() == {"small": True}


@pytest.mark.parametrize("lang", ["python", "node"])
def test_refused_post_is_not_fatal(start, lang):
    # The platform answers 413 (response too large) or 400 (unknown request id): the
    # runtime reports it on stderr and serves the next invocation.
    rt = start(lang, ECHO, "app.handler")
    rt.api.refuse_posts = [413]
    assert rt.invoke({"n": 1}).kind == "response"
    assert rt.invoke({"n": 2}).json() == {"n": 2}
    assert rt.proc.poll() is None
    deadline = time.time() + 5
    while "413" not in rt.stderr and time.time() < deadline:
        time.sleep(0.01)
    assert "413" in rt.stderr

@pytest.mark.parametrize("lang", ["python", "node"])
def test_start_up_time(start, lang):
    """Start to first response stays well within Lambda's budget (loose bound for CI)."""
    files = {"app.py": "def handler(e, c):\n    return 'up'\n", "app.js": "exports.handler = async () => 'up';\n"}
    t0 = time.time()
    rt = start(lang, files, "app.handler")
    assert rt.invoke({}).json() == "up"
    assert time.time() - t0 < 3.0


if NODE is None:  # pragma: no cover - informative only
    sys.stderr.write("node not found: the Node.js tests are skipped\n")


def test_python_json_fast_path_matches_stdlib():
    """The bootstrap's ``_json``-based encoder/decoder agree with the json module."""
    import decimal
    import importlib.util
    import json
    import math

    spec = importlib.util.spec_from_file_location("alonzo_python_bootstrap", PYTHON_RUNTIME)
    bootstrap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bootstrap)  # defines things only; main() runs as __main__

    values = [
        None, True, 0, -1, 2 ** 70, 1.5, -0.0, 1e300, "", "plain", "h\u00e9llo \u2603 \U0001f600",
        "quote\" back\\ nl\n tab\t nul\x00", [], {}, [1, [2, [3, {"a": None}]]],
        {"k": "v", "n": [1.25, False], "nested": {"x": {"y": []}}}, (1, 2), {1: "int key"},
    ]
    for value in values:
        assert bootstrap.to_json(value) == json.dumps(value), value
        text = json.dumps(value)
        assert bootstrap.json_loads(text) == json.loads(text), text
        assert bootstrap.json_loads(text.encode()) == json.loads(text), text
    assert bootstrap.to_json(float("nan")) == "NaN"
    assert math.isnan(bootstrap.json_loads(" NaN "))
    assert bootstrap.json_loads(' \n{"a": [1, 2]}\r\n') == {"a": [1, 2]}
    assert bootstrap.json_loads(b"-Infinity") == float("-inf")
    assert bootstrap.to_json({"d": decimal.Decimal("3.14159265358979323846")}) == '{"d": 3.14159265358979323846}'
    assert bootstrap.to_json([decimal.Decimal("NaN")]) == "[NaN]"
    for bad in ["", "{", "[1,]", "1 2", "{'a': 1}", "\ufeff{}"]:
        with pytest.raises(ValueError):
            bootstrap.json_loads(bad)
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        bootstrap.to_json({"s": {1}})
    circular = []
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular reference"):
        bootstrap.to_json(circular)


# =======================================================================================
# Runtimes started ahead of their function (the platform's pre-started sandboxes)
# =======================================================================================

PY_ENV_APP = """
import os, sys

def handler(event, context):
    return {"env": dict(os.environ), "cwd": os.getcwd(), "path0": sys.path[0],
            "stdin_is_char_device": (os.fstat(0).st_mode & 0o170000) == 0o020000,
            "name": context.function_name}
"""

NODE_ENV_APP = """
exports.handler = async (event, context) => ({
  env: { ...process.env }, cwd: process.cwd(), name: context.functionName,
});
"""


@pytest.mark.parametrize("lang", ["python", "node"])
def test_prestarted_runtime_becomes_its_function(start, lang):
    files = {"app.py": PY_ENV_APP} if lang == "python" else {"app.js": NODE_ENV_APP}
    rt = start(lang, files, "app.handler", env={"MY_VAR": "a=b c"}, prestarted=True)
    posted = rt.invoke({})
    assert posted.kind == "response", (posted, rt.stderr)
    out = posted.json()
    assert out["name"] == FUNCTION_NAME
    assert out["env"]["MY_VAR"] == "a=b c"
    assert "STARTED_AHEAD" not in out["env"], "the environment it started with is gone"
    assert "_RUNTIME_ASSIGNMENT_FD" not in out["env"]
    assert out["env"]["AWS_LAMBDA_FUNCTION_NAME"] == FUNCTION_NAME
    assert out["cwd"] == rt_task_root(rt)
    if lang == "python":
        assert out["path0"] == rt_task_root(rt)
        assert out["stdin_is_char_device"], "stdin is /dev/null"


def rt_task_root(rt):
    return rt.task_root


NODE_WARM_APP = """
exports.handler = async () => ({
  requireCache: Object.keys(require.cache).filter((k) => k.includes('warm-up')),
  handles: process._getActiveHandles().map((h) => h.constructor.name),
  servers: process._getActiveHandles().filter((h) => h.constructor.name === 'Server').length,
  logFormatJson: process.env.AWS_LAMBDA_LOG_FORMAT || null,
});
"""


@pytest.mark.parametrize("prestarted", [False, True])
def test_node_warm_up_of_a_prestarted_runtime_leaves_nothing_behind(start, prestarted):
    """A Node.js runtime started ahead exercises its client, the CommonJS and ES module
    loaders while it waits (warmUp); the function then finds no throwaway server or
    connection, no warm-up module in require.cache, and the same active handles as a runtime
    started with its function."""
    rt = start("node", {"app.js": NODE_WARM_APP}, "app.handler", prestarted=prestarted)
    posted = rt.invoke({})
    assert posted.kind == "response", (posted, rt.stderr)
    out = posted.json()
    assert out["requireCache"] == [], out
    assert out["servers"] == 0, out
    assert "Server" not in out["handles"], out


def test_node_prestarted_runtime_has_the_handles_of_a_fresh_one(start):
    outs = []
    for prestarted in (False, True):
        rt = start("node", {"app.js": NODE_WARM_APP}, "app.handler", prestarted=prestarted)
        posted = rt.invoke({})
        assert posted.kind == "response", (posted, rt.stderr)
        outs.append(posted.json())
    assert sorted(outs[0]["handles"]) == sorted(outs[1]["handles"]), outs


def test_node_json_log_format_comes_from_the_assigned_environment(start):
    """JSON_LOGS is read when main() starts, after the assignment, not at module load."""
    rt = start("node", {"app.js": "exports.handler = async () => { console.log('hi-json'); return 1; };"},
               "app.handler", env={"AWS_LAMBDA_LOG_FORMAT": "JSON"}, prestarted=True)
    posted = rt.invoke({})
    assert posted.kind == "response", (posted, rt.stderr)
    out = rt.wait_stdout("hi-json")
    line = next(l for l in out.splitlines() if "hi-json" in l)
    assert json.loads(line)["message"] == "hi-json", line
