"""Concurrency: the account limit, reserved concurrency and provisioned concurrency.

One private server with a small account limit (10, of which at least 2 stay unreserved) so
that bursts can exceed it; every test uses its own functions.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from alonzo_helpers import AlonzoServer, create_function, error_code, expect_error, make_zip, poll_until, unique_name

LIMIT = 10
UNRESERVED_MIN = 2

APP = '''
import os, time
INIT_AT = time.time()

def handler(event, context):
    if event.get("crash"):
        os._exit(3)
    time.sleep(event.get("sleep", 0))
    return {"init_at": INIT_AT, "init_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"), "pid": os.getpid(), "version": context.function_version}
'''


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = AlonzoServer(
        tmp_path_factory.mktemp("alonzo-concurrency"),
        owner="session",
        extra_env={"ALONZO_CONCURRENCY_LIMIT": str(LIMIT), "ALONZO_UNRESERVED_CONCURRENCY_MIN": str(UNRESERVED_MIN), "ALONZO_ASYNC_RETRY_DELAY": "1s"},
    )
    s.start()
    yield s
    s.close()


@pytest.fixture(scope="module")
def client(srv):
    return srv.client(max_pool_connections=64)


def make_fn(client, **kw) -> str:
    name = unique_name("conc")
    create_function(client, name, make_zip([("app.py", APP)]), Timeout=30, **kw)
    return name


def invoke(client, name, event=None, **kw):
    """Returns ("ok", body) or ("throttled", reason, retry-after) or raises."""
    try:
        r = client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **kw)
    except ClientError as e:
        if error_code(e) == "TooManyRequestsException":
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 429
            assert e.response["Error"]["Message"] == "Rate Exceeded."
            return ("throttled", e.response.get("Reason"), e.response["ResponseMetadata"]["HTTPHeaders"].get("retry-after"))
        raise
    body = json.loads(r["Payload"].read())
    assert "FunctionError" not in r, body
    return ("ok", body, r)


def burst(client, calls):
    """Runs the calls at the same moment (a barrier releases them together)."""
    gate = threading.Barrier(len(calls))

    def run(call):
        gate.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as ex:
        return list(ex.map(run, calls))


def test_reserved_concurrency_crud_and_account_settings(client):
    name = make_fn(client)
    assert client.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions") is None
    assert "Concurrency" not in client.get_function(FunctionName=name)
    before = client.get_account_settings()["AccountLimit"]
    assert before["ConcurrentExecutions"] == LIMIT
    r = client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=3)
    assert r["ReservedConcurrentExecutions"] == 3
    assert client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 3
    assert client.get_function(FunctionName=name)["Concurrency"] == {"ReservedConcurrentExecutions": 3}
    after = client.get_account_settings()["AccountLimit"]
    assert after["UnreservedConcurrentExecutions"] == before["UnreservedConcurrentExecutions"] - 3
    # Leaving fewer than the minimum unreserved is refused and changes nothing.
    e = expect_error("InvalidParameterValueException", client.put_function_concurrency, FunctionName=name, ReservedConcurrentExecutions=LIMIT)
    assert f"minimum value of [{UNRESERVED_MIN}]" in e.response["Error"]["Message"]
    assert client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 3
    expect_error(("ValidationException", "InvalidParameterValueException"), srv_raw(client).put_function_concurrency, FunctionName=name, ReservedConcurrentExecutions=-1)
    client.delete_function_concurrency(FunctionName=name)
    assert client.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions") is None
    assert client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == before["UnreservedConcurrentExecutions"]
    expect_error("ResourceNotFoundException", client.put_function_concurrency, FunctionName=unique_name("missing"), ReservedConcurrentExecutions=1)


_RAW = {}


def srv_raw(client):
    """A client without parameter validation, so out-of-range values reach the server."""
    import boto3
    from botocore.config import Config

    key = id(client)
    if key not in _RAW:
        creds = client._request_signer._credentials
        _RAW[key] = boto3.session.Session(aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key, region_name=client.meta.region_name).client(
            "lambda", endpoint_url=client.meta.endpoint_url, config=Config(parameter_validation=False, retries={"total_max_attempts": 1})
        )
    return _RAW[key]


def test_reservation_caps_a_burst_exactly(client):
    name = make_fn(client)
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    try:
        results = burst(client, [lambda: invoke(client, name, {"sleep": 1.5})] * 5)
    finally:
        client.delete_function_concurrency(FunctionName=name)
    ok = [r for r in results if r[0] == "ok"]
    throttled = [r for r in results if r[0] == "throttled"]
    assert len(ok) == 2 and len(throttled) == 3, results
    for _, reason, retry_after in throttled:
        assert reason == "ReservedFunctionConcurrentInvocationLimitExceeded"
        assert retry_after is not None and int(retry_after) >= 1


def test_reservation_zero_blocks_and_delete_restores(client):
    name = make_fn(client)
    assert invoke(client, name)[0] == "ok"
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    r = invoke(client, name)
    assert r[:2] == ("throttled", "ReservedFunctionConcurrentInvocationLimitExceeded")
    client.delete_function_concurrency(FunctionName=name)
    assert invoke(client, name)[0] == "ok"


def test_account_limit_throttles_exactly_the_excess(client):
    """The unreserved pool is LIMIT minus the reservations; a burst beyond it is throttled
    with ConcurrentInvocationLimitExceeded, while a reserved function keeps its share."""
    reserved_fn = make_fn(client)
    before = client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
    client.put_function_concurrency(FunctionName=reserved_fn, ReservedConcurrentExecutions=3)
    try:
        pool = client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
        assert pool == before - 3
        a, b = make_fn(client), make_fn(client)
        calls = [lambda n=(a if i % 2 else b): invoke(client, n, {"sleep": 2}) for i in range(pool + 3)]
        calls += [lambda: invoke(client, reserved_fn, {"sleep": 2})] * 3
        results = burst(client, calls)
        unreserved = results[: pool + 3]
        assert sum(r[0] == "ok" for r in unreserved) == pool, unreserved
        throttled = [r for r in unreserved if r[0] == "throttled"]
        assert len(throttled) == 3
        assert all(r[1] == "ConcurrentInvocationLimitExceeded" for r in throttled)
        assert all(r[0] == "ok" for r in results[pool + 3 :]), "the reservation is guaranteed"
    finally:
        client.delete_function_concurrency(FunctionName=reserved_fn)


def test_async_events_under_throttling_are_delayed_not_lost(client, srv):
    name = make_fn(client)
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    request = __import__("contextlib").ExitStack()
    request.callback(client.delete_function_concurrency, FunctionName=name)
    ids = []
    for i in range(4):
        r = client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"sleep": 0.5, "i": i}).encode())
        assert r["StatusCode"] == 202
        ids.append(r["ResponseMetadata"]["RequestId"])
    log_dir = srv.data_dir / "logs" / f"aws-lambda-{name}"

    def all_ran():
        text = "".join(p.read_text() for p in log_dir.glob("*.log")) if log_dir.is_dir() else ""
        return all(f"END RequestId: {rid}" in text for rid in ids) and text

    text = poll_until(all_ran, timeout=60, what="every throttled async event ran")
    for rid in ids:
        assert text.count(f"START RequestId: {rid}") == 1, "each event ran exactly once"
    request.close()


def wait_ready(client, name, qualifier, timeout=60):
    def ready():
        c = client.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        assert c["Status"] != "FAILED", c
        return c if c["Status"] == "READY" else None

    return poll_until(ready, timeout=timeout, interval=0.2, what="provisioned concurrency READY")


def test_provisioned_concurrency_is_initialised_before_requests(client):
    name = make_fn(client)
    version = client.publish_version(FunctionName=name)["Version"]
    expect_error("InvalidParameterValueException", client.put_provisioned_concurrency_config, FunctionName=name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1)
    expect_error("ProvisionedConcurrencyConfigNotFoundException", client.get_provisioned_concurrency_config, FunctionName=name, Qualifier=version, status=404)
    put = client.put_provisioned_concurrency_config(FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=2)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert put["RequestedProvisionedConcurrentExecutions"] == 2
    assert put["Status"] in ("IN_PROGRESS", "READY")
    # Allocated counts the environments initialised so far, as in Lambda's own example
    # (0 in the answer to a new configuration), never more than are available.
    assert put["AllocatedProvisionedConcurrentExecutions"] == put["AvailableProvisionedConcurrentExecutions"]
    assert put["AllocatedProvisionedConcurrentExecutions"] < 2 or put["Status"] == "READY"
    cfg = wait_ready(client, name, version)
    assert cfg["AvailableProvisionedConcurrentExecutions"] == 2
    assert cfg["AllocatedProvisionedConcurrentExecutions"] == 2
    listed = client.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"]
    assert [c["FunctionArn"].rsplit(":", 1)[1] for c in listed] == [version]
    before = time.time()
    status, body, resp = invoke(client, name, Qualifier=version, LogType="Tail")
    assert status == "ok"
    assert body["init_type"] == "provisioned-concurrency"
    assert body["init_at"] < before, "initialised before the request arrived"
    tail = base64.b64decode(resp["LogResult"]).decode()
    assert "REPORT RequestId" in tail and "Init Duration" not in tail
    # Spill-over: more parallel requests than provisioned environments still succeed; the
    # extra ones run on-demand.
    results = burst(client, [lambda: invoke(client, name, {"sleep": 1}, Qualifier=version)] * 3)
    assert all(r[0] == "ok" for r in results), results
    types = sorted(r[1]["init_type"] for r in results)
    assert types == ["on-demand", "provisioned-concurrency", "provisioned-concurrency"]
    client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    expect_error("ProvisionedConcurrencyConfigNotFoundException", client.get_provisioned_concurrency_config, FunctionName=name, Qualifier=version)


def test_provisioned_environment_is_replaced_after_a_crash(client):
    name = make_fn(client)
    version = client.publish_version(FunctionName=name)["Version"]
    client.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    client.put_provisioned_concurrency_config(FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1)
    wait_ready(client, name, "live")
    first = invoke(client, name, Qualifier="live")[1]
    assert first["init_type"] == "provisioned-concurrency"
    r = client.invoke(FunctionName=name, Qualifier="live", Payload=json.dumps({"crash": True}).encode())
    assert r.get("FunctionError") == "Unhandled"
    # A new provisioned environment replaces the one that died, initialised in the
    # background: the next requests find it ready, never cold.
    def replaced():
        body = invoke(client, name, Qualifier="live")[1]
        fresh = body["init_type"] == "provisioned-concurrency" and body["init_at"] != first["init_at"]
        return body if fresh else None

    again = poll_until(replaced, timeout=30, interval=0.5, what="a replacement provisioned environment")
    assert again["init_at"] > first["init_at"]
    cfg = wait_ready(client, name, "live")
    assert cfg["AvailableProvisionedConcurrentExecutions"] == 1


def test_provisioned_concurrency_respects_the_reservation(client):
    name = make_fn(client)
    version = client.publish_version(FunctionName=name)["Version"]
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    expect_error("InvalidParameterValueException", client.put_provisioned_concurrency_config, FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=2)
    client.put_provisioned_concurrency_config(FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=1)
    wait_ready(client, name, version)
    # The provisioned environment counts against the reservation: a second parallel call
    # is throttled.
    results = burst(client, [lambda: invoke(client, name, {"sleep": 1}, Qualifier=version)] * 2)
    assert sorted(r[0] for r in results) == ["ok", "throttled"], results
    client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    client.delete_function_concurrency(FunctionName=name)


def test_cold_and_warm_report_lines(client):
    name = make_fn(client)
    _, _, cold = invoke(client, name, LogType="Tail")
    _, _, warm = invoke(client, name, LogType="Tail")
    cold_tail = base64.b64decode(cold["LogResult"]).decode()
    warm_tail = base64.b64decode(warm["LogResult"]).decode()
    assert re.search(r"Init Duration: \d+\.\d\d ms", cold_tail), cold_tail
    assert "Init Duration" not in warm_tail


def test_alonzo_top_shows_live_concurrency(client, srv):
    from alonzo_helpers import ALONZO_BIN, run

    name = make_fn(client)
    version = client.publish_version(FunctionName=name)["Version"]
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)
    try:
        client.put_provisioned_concurrency_config(FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=1)
        wait_ready(client, name, version)
        t = threading.Thread(target=invoke, args=(client, name, {"sleep": 3}))
        t.start()
        time.sleep(0.5)
        assert invoke(client, name)[0] == "throttled"
        snap = json.loads(run([str(ALONZO_BIN), "top", "--once", "--json"], env=srv.env, timeout=30).stdout)
        rows = {(v["Function"], v["Version"]): v for v in snap["Versions"]}
        assert rows[(name, "$LATEST")]["Busy"] == 1
        assert rows[(name, version)]["Provisioned"] == 1
        assert snap["Reserved"][name] == 1
        assert snap["Throttles"][name] >= 1
        text = run([str(ALONZO_BIN), "top", "--once"], env=srv.env, timeout=30).stdout
        assert "PROVISIONED" in text and name in text
        t.join()
        client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    finally:
        client.delete_function_concurrency(FunctionName=name)


def _open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _settled_descriptors(pid: int) -> int:
    """The server's descriptor count once it has stayed the same for a second (pool refills
    and closing connections finished)."""
    last, since = _open_descriptors(pid), time.monotonic()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = _open_descriptors(pid)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 1.0:
            return now
    raise AssertionError(f"the server's descriptor count did not settle (last {last})")


def test_idle_environments_hold_few_descriptors(server_factory):
    """The server holds 7 descriptors per environment (docs/performance.md, "Density"): the
    Runtime API listener and connection, two output pipes, the jail process's pidfd, the log
    stream's file and the cgroup's memory-peak file. At 10, 2,000 idle environments ran out of
    a 20,000 hard limit; this keeps the count from creeping back."""
    srv = server_factory()
    srv.start()
    admin = srv.client()
    name = create_function(admin, zip_bytes=make_zip([("app.py", APP)]), Handler="app.handler", Timeout=30)["FunctionName"]
    admin.invoke(FunctionName=name, Payload=b"{}")
    pid = srv.proc.pid
    before = _settled_descriptors(pid)

    n = 16
    clients = [srv.client() for _ in range(n)]

    def call(c):
        out = c.invoke(FunctionName=name, Payload=json.dumps({"sleep": 1.5}).encode())
        assert "FunctionError" not in out, out

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(call, clients))  # list(): a failed call raises here
    for c in clients:
        c.close()
    # n calls at once, each in an environment of its own, all now idle and warm: the one from
    # the first call and n - 1 new ones.
    after = _settled_descriptors(pid)
    per_env = (after - before) / (n - 1)
    assert per_env <= 7.5, f"{before} -> {after} descriptors for {n - 1} new environments"
    # And the environments really are there: each holds at least five descriptors.
    assert after - before >= 5 * (n - 1), f"{before} -> {after}"
