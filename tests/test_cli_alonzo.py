"""The `alonzo` client commands that run and read functions: `alonzo invoke` and
`alonzo logs`, through the signed API like any AWS client."""

import json

from alonzo_helpers import ALONZO_BIN, create_function, make_zip, poll_until, run, unique_name

APP = """
def handler(event, context):
    print("processing", event.get("n"))
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"doubled": event.get("n", 0) * 2}
"""


def alonzo(*args, env):
    return run([str(ALONZO_BIN), *args], env=env, timeout=60)


def test_invoke_prints_result_and_log_tail(server, lambda_client):
    name = unique_name("cli")
    create_function(lambda_client, name, make_zip([("app.py", APP)]))

    ok = alonzo("invoke", name, json.dumps({"n": 21}), env=server.env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"doubled": 42}
    assert "START RequestId:" in ok.stderr and "REPORT RequestId:" in ok.stderr
    assert "processing 21" in ok.stderr

    failed = alonzo("invoke", name, json.dumps({"fail": True}), env=server.env)
    assert failed.returncode != 0
    assert json.loads(failed.stdout)["errorType"] == "ValueError"
    assert "the function failed" in failed.stderr

    queued = alonzo("invoke", "--async", name, json.dumps({"n": 1}), env=server.env)
    assert queued.returncode == 0, queued.stderr
    assert "queued: request id" in queued.stdout

    missing = alonzo("invoke", unique_name("nope"), env=server.env)
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr


def test_logs_prints_the_functions_log(server, lambda_client):
    name = unique_name("clilogs")
    create_function(lambda_client, name, make_zip([("app.py", APP)]))
    lambda_client.invoke(FunctionName=name, Payload=json.dumps({"n": 7}).encode())
    # The END and REPORT lines are written just after the response (logs arrive shortly after
    # an invocation on Lambda too).
    p = poll_until(lambda: (q := alonzo("logs", name, env=server.env)) and "END RequestId:" in q.stdout and q,
                   timeout=10, what="the END line in `alonzo logs`")
    assert p.returncode == 0, p.stderr
    assert "processing 7" in p.stdout
    filtered = alonzo("logs", name, "--filter", "processing", env=server.env)
    assert filtered.returncode == 0, filtered.stderr
    assert [line for line in filtered.stdout.splitlines() if line] == ["processing 7"]
