"""Asynchronous invocation configuration and what it does: `MaximumRetryAttempts`,
`MaximumEventAgeInSeconds`, and destinations that receive Lambda's invocation record.

A private server with a 1-second retry delay, so that retries are observable quickly.
Function destinations are observed through the destination function's own log.
"""

from __future__ import annotations

import json
import re

import pytest

from alonzo_helpers import create_function, expect_error, make_zip, poll_until, running_server, unique_name

RECORDER = '''
import json

def handler(event, context):
    print("RECORD " + json.dumps(event))
    return {"ok": True}
'''

FLAKY = '''
def handler(event, context):
    print("attempt " + context.aws_request_id)
    if event.get("fail"):
        raise ValueError("boom: " + str(event.get("tag")))
    return {"echo": event}
'''


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("alonzo-async-config"), owner="session", extra_env={"ALONZO_ASYNC_RETRY_DELAY": "1s"}) as s:
        yield s


@pytest.fixture(scope="module")
def client(srv):
    return srv.client()


def fn(client, code: str) -> str:
    name = unique_name("acfg")
    create_function(client, name, make_zip([("app.py", code)]))
    return name


def log_text(srv, name: str) -> str:
    d = srv.data_dir / "logs" / f"aws-lambda-{name}"
    return "".join(p.read_text() for p in sorted(d.glob("*.log"))) if d.is_dir() else ""


def records(srv, name: str) -> list[dict]:
    return [json.loads(m.group(1)) for m in re.finditer(r"RECORD (\{.*\})$", log_text(srv, name), re.M)]


def send(client, name: str, event: dict, **kw) -> str:
    r = client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(event).encode(), **kw)
    assert r["StatusCode"] == 202
    return r["ResponseMetadata"]["RequestId"]


def test_event_invoke_config_crud(client, srv):
    name = fn(client, FLAKY)
    expect_error("ResourceNotFoundException", client.get_function_event_invoke_config, FunctionName=name)
    put = client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1, MaximumEventAgeInSeconds=120)
    assert put["FunctionArn"] == srv.function_arn(name) + ":$LATEST"
    assert put["MaximumRetryAttempts"] == 1 and put["MaximumEventAgeInSeconds"] == 120
    dest = srv.function_arn(fn(client, RECORDER))
    upd = client.update_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnFailure": {"Destination": dest}})
    assert upd["MaximumRetryAttempts"] == 1, "Update merges"
    assert upd["DestinationConfig"]["OnFailure"] == {"Destination": dest}
    # Put replaces every field.
    again = client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    assert "MaximumEventAgeInSeconds" not in again and again["DestinationConfig"]["OnFailure"] == {}
    # Per qualifier.
    v = client.publish_version(FunctionName=name)["Version"]
    client.create_alias(FunctionName=name, Name="live", FunctionVersion=v)
    client.put_function_event_invoke_config(FunctionName=name, Qualifier="live", MaximumRetryAttempts=2)
    client.put_function_event_invoke_config(FunctionName=name, Qualifier=v, MaximumRetryAttempts=1)
    listed = client.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert sorted(c["FunctionArn"].rsplit(":", 1)[1] for c in listed) == sorted(["$LATEST", "live", v])
    assert client.get_function_event_invoke_config(FunctionName=name, Qualifier="live")["MaximumRetryAttempts"] == 2
    # Bad input changes nothing.
    raw = srv.client(validate=False)
    expect_error("ValidationException", raw.put_function_event_invoke_config, FunctionName=name, MaximumRetryAttempts=3)
    expect_error("ValidationException", raw.put_function_event_invoke_config, FunctionName=name, MaximumEventAgeInSeconds=59)
    expect_error("InvalidParameterValueException", client.put_function_event_invoke_config, FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": "not-an-arn"}})
    expect_error("ResourceNotFoundException", client.put_function_event_invoke_config, FunctionName=name, Qualifier="nope", MaximumRetryAttempts=1)
    expect_error("ResourceNotFoundException", client.put_function_event_invoke_config, FunctionName=name, Qualifier="99", MaximumRetryAttempts=1)
    assert client.get_function_event_invoke_config(FunctionName=name)["MaximumRetryAttempts"] == 0
    client.delete_function_event_invoke_config(FunctionName=name, Qualifier="live")
    expect_error("ResourceNotFoundException", client.get_function_event_invoke_config, FunctionName=name, Qualifier="live")
    expect_error("ResourceNotFoundException", client.delete_function_event_invoke_config, FunctionName=name, Qualifier="live")


def test_failure_destination_gets_the_record_after_retries(client, srv):
    name, recorder = fn(client, FLAKY), fn(client, RECORDER)
    client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1, DestinationConfig={"OnFailure": {"Destination": srv.function_arn(recorder)}})
    rid = send(client, name, {"fail": True, "tag": "t1"})
    recs = poll_until(lambda: records(srv, recorder), timeout=30, what="the failure record")
    assert len(recs) == 1
    rec = recs[0]
    assert rec["version"] == "1.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["timestamp"])
    ctx = rec["requestContext"]
    assert ctx == {"requestId": rid, "functionArn": srv.function_arn(name) + ":$LATEST", "condition": "RetriesExhausted", "approximateInvokeCount": 2}
    assert rec["requestPayload"] == {"fail": True, "tag": "t1"}
    assert rec["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert rec["responsePayload"]["errorType"] == "ValueError"
    assert "boom: t1" in rec["responsePayload"]["errorMessage"]
    assert log_text(srv, name).count("attempt " + rid) == 2, "one retry, as configured"


def test_zero_retries_and_success_destination(client, srv):
    name, ok_rec, fail_rec = fn(client, FLAKY), fn(client, RECORDER), fn(client, RECORDER)
    client.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnSuccess": {"Destination": srv.function_arn(ok_rec)}, "OnFailure": {"Destination": srv.function_arn(fail_rec)}},
    )
    good = send(client, name, {"fail": False, "tag": "good"})
    bad = send(client, name, {"fail": True, "tag": "bad"})
    success = poll_until(lambda: records(srv, ok_rec), timeout=30, what="the success record")[0]
    assert success["requestContext"]["requestId"] == good
    assert success["requestContext"]["condition"] == "Success"
    assert success["requestContext"]["approximateInvokeCount"] == 1
    assert success["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert success["responsePayload"] == {"echo": {"fail": False, "tag": "good"}}
    failure = poll_until(lambda: records(srv, fail_rec), timeout=30, what="the failure record")[0]
    assert failure["requestContext"]["requestId"] == bad
    assert failure["requestContext"]["approximateInvokeCount"] == 1
    assert log_text(srv, name).count("attempt " + bad) == 1, "MaximumRetryAttempts 0: no retry"


def test_reserved_zero_sends_events_to_the_failure_destination(client, srv):
    name, recorder = fn(client, FLAKY), fn(client, RECORDER)
    client.put_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnFailure": {"Destination": srv.function_arn(recorder)}})
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    rid = send(client, name, {"tag": "never runs"})
    rec = poll_until(lambda: records(srv, recorder), timeout=30, what="the failure record")[0]
    assert rec["requestContext"]["requestId"] == rid
    assert rec["requestContext"]["approximateInvokeCount"] == 0
    assert "attempt" not in log_text(srv, name)


def test_alias_qualified_events_use_the_alias_config(client, srv):
    name, recorder = fn(client, FLAKY), fn(client, RECORDER)
    v = client.publish_version(FunctionName=name)["Version"]
    client.create_alias(FunctionName=name, Name="prod", FunctionVersion=v)
    client.put_function_event_invoke_config(FunctionName=name, Qualifier="prod", MaximumRetryAttempts=0, DestinationConfig={"OnFailure": {"Destination": srv.function_arn(recorder)}})
    rid = send(client, name, {"fail": True}, Qualifier="prod")
    rec = poll_until(lambda: records(srv, recorder), timeout=30, what="the failure record")[0]
    assert rec["requestContext"]["functionArn"] == srv.function_arn(name) + ":prod"
    assert rec["responseContext"]["executedVersion"] == v
    assert rec["requestContext"]["requestId"] == rid


def test_event_older_than_its_maximum_age_goes_to_the_failure_path(server_factory):
    """A retry due after `MaximumEventAgeInSeconds` (60 s, the minimum) is not run: the
    event fails with `EventAgeExceeded`, carrying the last attempt's error."""
    srv = server_factory(extra_env={"ALONZO_ASYNC_RETRY_DELAY": "61s"}).start()
    client = srv.client()
    name, recorder = fn(client, FLAKY), fn(client, RECORDER)
    client.put_function_event_invoke_config(
        FunctionName=name, MaximumEventAgeInSeconds=60, DestinationConfig={"OnFailure": {"Destination": srv.function_arn(recorder)}}
    )
    rid = send(client, name, {"fail": True, "tag": "old"})
    rec = poll_until(lambda: records(srv, recorder), timeout=90, interval=0.5, what="the EventAgeExceeded record")[0]
    assert rec["requestContext"]["requestId"] == rid
    assert rec["requestContext"]["condition"] == "EventAgeExceeded"
    assert rec["requestContext"]["approximateInvokeCount"] == 1
    assert rec["responseContext"]["functionError"] == "Unhandled"
    assert "boom: old" in rec["responsePayload"]["errorMessage"]
    assert log_text(srv, name).count("attempt " + rid) == 1
