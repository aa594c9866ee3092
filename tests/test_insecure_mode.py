"""`alonzo serve --insecure-no-isolation`: the development mode that runs functions as plain
processes. It must be explicit and loudly logged, and functions must still run with the
Lambda contract (Runtime API, environment, errors, timeouts)."""

import json
import os

from alonzo_helpers import create_function, make_zip, unique_name

APP = """
import os, time
def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {"pid": os.getpid(), "task_root": os.environ["LAMBDA_TASK_ROOT"],
            "api": os.environ["AWS_LAMBDA_RUNTIME_API"], "request_id": context.aws_request_id}
"""


def test_insecure_mode_runs_functions_and_says_so(server_factory):
    srv = server_factory()
    base = srv.command
    srv.command = lambda: base() + ["--insecure-no-isolation"]
    srv.start()
    assert "INSECURE" in srv.log_text(), "the insecure mode must be loudly logged"
    client = srv.client()
    name = unique_name("insecure")
    create_function(client, name, make_zip([("app.py", APP)]), Timeout=1)

    first = client.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in first, first["Payload"].read()
    body = json.loads(first["Payload"].read())
    assert body["request_id"] == first["ResponseMetadata"]["RequestId"]
    # Without a mount namespace the code is at its host path, and the Runtime API is on a
    # host loopback port rather than the sandbox's own 127.0.0.1:9001.
    assert body["task_root"] != "/var/task" and os.path.isdir(body["task_root"])
    assert body["api"].startswith("127.0.0.1:") and body["api"] != "127.0.0.1:9001"

    warm = json.loads(client.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())
    assert warm["pid"] == body["pid"], "a warm environment is reused"

    timed_out = client.invoke(FunctionName=name, Payload=json.dumps({"sleep": 5}).encode())
    assert timed_out.get("FunctionError") == "Unhandled"
    assert json.loads(timed_out["Payload"].read())["errorType"] == "Sandbox.Timedout"
    after = json.loads(client.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())
    assert after["pid"] != body["pid"], "a timed-out environment is replaced"


def test_isolation_is_the_default(server):
    assert "INSECURE" not in server.log_text()
