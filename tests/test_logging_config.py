"""Functions' `LoggingConfig` and the CloudWatch Logs-compatible API, driven by boto3's
`lambda` and `logs` clients and the AWS CLI against logs produced by real invocations:
JSON platform records and application-level filtering in Python and Node.js, SystemLogLevel,
validation, custom log groups, CreateLogGroup/CreateLogStream/PutLogEvents, retention CRUD and
enforcement by the sweeper, the stdout flood cap and rate limit, and trace ids in sync, async,
destination and SQS-mapping invocations.

A private server with a 1-second log sweep, a 64 KiB/s output rate and a 128 KiB cap per
function.
"""

from __future__ import annotations

import json
import re
import statistics
import threading
import time

import boto3
import pytest
from botocore.config import Config

from alonzo_helpers import (
    AlonzoServer,
    aws_cli,
    create_function,
    expect_error,
    invoke_ok,
    make_zip,
    poll_until,
    run,
    unique_name,
    wait_updated,
)

CAP = 128 * 1024
TRACE_RE = re.compile(r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$")

PY_LEVELS = '''
import logging, os
logger = logging.getLogger("app")

def handler(event, context):
    logger.debug("debug-msg")
    logger.info("info-msg")
    logger.warning("warn-msg")
    logger.error("error-msg")
    print("plain-print")
    return {"format": os.environ.get("AWS_LAMBDA_LOG_FORMAT"), "level": os.environ.get("AWS_LAMBDA_LOG_LEVEL"),
            "request": context.aws_request_id}
'''

NODE_LEVELS = '''
export const handler = async (event, context) => {
  console.trace("trace-msg");
  console.debug("debug-msg");
  console.info("info-msg");
  console.log("log-msg");
  console.warn("warn-msg");
  console.error("error-msg");
  return { format: process.env.AWS_LAMBDA_LOG_FORMAT, level: process.env.AWS_LAMBDA_LOG_LEVEL,
           request: context.awsRequestId };
};
'''

PY_TRACE = '''
import os

def handler(event, context):
    trace = os.environ.get("_X_AMZN_TRACE_ID")
    print("TRACE " + str(trace))
    return {"trace": trace}
'''

NODE_TRACE = '''
export const handler = async () => ({ trace: process.env._X_AMZN_TRACE_ID ?? null });
'''

FLOOD = '''
def handler(event, context):
    line = "flood " + "x" * 200
    while True:
        print(line)
'''


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = AlonzoServer(
        tmp_path_factory.mktemp("alonzo-logging"),
        owner="session",
        extra_env={
            "ALONZO_LOG_SWEEP_INTERVAL": "1s",
            "ALONZO_LOG_RATE_LIMIT": "64KiB",
            "ALONZO_LOG_MAX_BYTES_PER_FUNCTION": str(CAP),
            "ALONZO_ASYNC_RETRY_DELAY": "1s",
        },
    )
    s.start()
    yield s
    s.close()


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client()


def _client(srv, service):
    session = boto3.session.Session(aws_access_key_id=srv.access_key, aws_secret_access_key=srv.secret_key, region_name=srv.region)
    return session.client(service, endpoint_url=srv.endpoint, config=Config(retries={"total_max_attempts": 1}))


@pytest.fixture(scope="module")
def logs(srv):
    return _client(srv, "logs")


@pytest.fixture(scope="module")
def sqs(srv):
    return _client(srv, "sqs")


def messages(logs, group: str, pattern: str = "") -> list[str]:
    resp = logs.filter_log_events(logGroupName=group, filterPattern=pattern)
    return [e["message"] for e in resp["events"]]


def wait_messages(logs, group: str, pred, timeout: float = 20.0, pattern: str = "") -> list[str]:
    def check():
        try:
            msgs = messages(logs, group, pattern)
        except logs.exceptions.ResourceNotFoundException:
            return None
        return msgs if pred(msgs) else None

    return poll_until(check, timeout, what=f"log lines in {group}")


def json_records(msgs: list[str]) -> list[dict]:
    out = []
    for m in msgs:
        try:
            value = json.loads(m)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


# -- LoggingConfig ----------------------------------------------------------------------------


def test_json_format_python_levels_and_platform_records(lam, logs):
    name = unique_name("jsonpy")
    create_function(lam, name, make_zip([("app.py", PY_LEVELS)]),
                    LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "WARN"})
    cfg = lam.get_function_configuration(FunctionName=name)["LoggingConfig"]
    assert cfg == {"LogFormat": "JSON", "ApplicationLogLevel": "WARN", "SystemLogLevel": "INFO", "LogGroup": f"/aws/lambda/{name}"}
    _, body = invoke_ok(lam, name)
    assert body["format"] == "JSON" and body["level"] == "WARN"
    request_id = body["request"]
    group = f"/aws/lambda/{name}"
    msgs = wait_messages(logs, group, lambda ms: any('"platform.report"' in m for m in ms))
    records = json_records(msgs)
    app = [r for r in records if "level" in r]
    assert [(r["level"], r["message"], r["logger"], r["requestId"]) for r in app] == [
        ("WARNING", "warn-msg", "app", request_id),
        ("ERROR", "error-msg", "app", request_id),
    ]
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", r["timestamp"]) for r in app)
    assert "plain-print" in msgs, "print() output stays plain text"
    types = [r["type"] for r in records if "type" in r]
    assert types == ["platform.initStart", "platform.start", "platform.runtimeDone", "platform.report"], types
    by_type = {r["type"]: r for r in records if "type" in r}
    assert by_type["platform.start"]["record"] == {"requestId": request_id, "version": "$LATEST"}
    report = by_type["platform.report"]["record"]
    assert report["requestId"] == request_id and report["status"] == "success"
    assert set(report["metrics"]) >= {"durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB", "initDurationMs"}
    assert report["metrics"]["memorySizeMB"] == 128
    assert by_type["platform.initStart"]["record"]["functionName"] == name
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", r["time"]) for r in records if "type" in r)
    assert not any(m.startswith(("START ", "END ", "REPORT ")) for m in msgs)


def test_json_format_node_levels_and_system_level_warn(lam, logs):
    name = unique_name("jsonnode")
    create_function(lam, name, make_zip([("index.mjs", NODE_LEVELS)]), Runtime="nodejs20.x", Handler="index.handler",
                    LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "DEBUG", "SystemLogLevel": "WARN"})
    _, body = invoke_ok(lam, name)
    assert body["format"] == "JSON" and body["level"] == "DEBUG"
    group = f"/aws/lambda/{name}"
    msgs = wait_messages(logs, group, lambda ms: any("error-msg" in m for m in ms))
    time.sleep(0.5)
    msgs = messages(logs, group)
    records = json_records(msgs)
    app = [(r["level"], r["message"]) for r in records if "level" in r]
    assert app == [("DEBUG", "debug-msg"), ("INFO", "info-msg"), ("INFO", "log-msg"), ("WARN", "warn-msg"), ("ERROR", "error-msg")]
    assert all(r["requestId"] == body["request"] for r in records if "level" in r)
    assert not [r for r in records if "type" in r], "SystemLogLevel WARN hides the INFO platform records"


def test_text_format_is_unchanged(lam, logs):
    name = unique_name("textfmt")
    create_function(lam, name, make_zip([("app.py", PY_LEVELS)]))
    cfg = lam.get_function_configuration(FunctionName=name)["LoggingConfig"]
    assert cfg == {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"}
    _, body = invoke_ok(lam, name)
    assert body["format"] == "Text" and body["level"] is None
    group = f"/aws/lambda/{name}"
    msgs = wait_messages(logs, group, lambda ms: any(m.startswith("REPORT ") for m in ms))
    rid = body["request"]
    assert msgs[0] == "INIT_START Runtime Version: python3.11"
    assert f"START RequestId: {rid} Version: $LATEST" in msgs
    assert f"END RequestId: {rid}" in msgs
    assert re.match(rf"^REPORT RequestId: {rid}\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\tMemory Size: 128 MB\tMax Memory Used: \d+ MB\tInit Duration: [\d.]+ ms\t$", msgs[-1])
    assert any(re.match(rf"^\[WARNING\]\t\S+Z\t{rid}\twarn-msg$", m) for m in msgs), msgs
    assert not any("info-msg" in m for m in msgs), "Python's root logger stays at WARNING, as on Lambda"


def test_levels_need_the_json_format(lam):
    name = unique_name("lvlval")
    err = expect_error("InvalidParameterValueException", lam.create_function, FunctionName=name, Runtime="python3.11",
                       Role="arn:aws:iam::000000000000:role/lambda", Handler="app.handler",
                       Code={"ZipFile": make_zip([("app.py", PY_LEVELS)])},
                       LoggingConfig={"LogFormat": "Text", "ApplicationLogLevel": "DEBUG"}, status=400)
    assert 'LogLevel is not supported when LogFormat is set to "Text"' in str(err)
    expect_error("ResourceNotFoundException", lam.get_function, FunctionName=name)
    create_function(lam, name, make_zip([("app.py", PY_LEVELS)]))
    before = lam.get_function_configuration(FunctionName=name)
    expect_error("InvalidParameterValueException", lam.update_function_configuration, FunctionName=name,
                 LoggingConfig={"SystemLogLevel": "DEBUG"})
    assert lam.get_function_configuration(FunctionName=name)["RevisionId"] == before["RevisionId"]
    lam.update_function_configuration(FunctionName=name, LoggingConfig={"LogFormat": "JSON", "SystemLogLevel": "DEBUG"})
    cfg = wait_updated(lam, name)["LoggingConfig"]
    assert (cfg["ApplicationLogLevel"], cfg["SystemLogLevel"]) == ("INFO", "DEBUG")
    lam.update_function_configuration(FunctionName=name, LoggingConfig={"LogFormat": "Text"})
    cfg = wait_updated(lam, name)["LoggingConfig"]
    assert "ApplicationLogLevel" not in cfg and "SystemLogLevel" not in cfg, "Text drops the levels"


def test_custom_log_group(lam, logs):
    name = unique_name("customgrp")
    group = f"/custom/{name}"
    create_function(lam, name, make_zip([("app.py", PY_TRACE)]), LoggingConfig={"LogFormat": "Text", "LogGroup": group})
    _, body = invoke_ok(lam, name)
    groups = [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix="/custom/")["logGroups"]]
    assert group in groups
    wait_messages(logs, group, lambda ms: any(m.startswith("REPORT ") for m in ms))
    assert not logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"]


# -- Logs API: groups, streams, retention -----------------------------------------------------------


def test_create_log_group_and_retention_policy_crud(logs):
    group = f"/app/{unique_name('grp')}"
    logs.create_log_group(logGroupName=group)
    expect_error("ResourceAlreadyExistsException", logs.create_log_group, logGroupName=group, status=400)
    expect_error("InvalidParameterException", logs.create_log_group, logGroupName="bad:name")
    (info,) = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert info["logGroupName"] == group and "retentionInDays" not in info
    logs.put_retention_policy(logGroupName=group, retentionInDays=7)
    (info,) = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert info["retentionInDays"] == 7
    expect_error("InvalidParameterException", logs.put_retention_policy, logGroupName=group, retentionInDays=4)
    (info,) = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert info["retentionInDays"] == 7, "a refused value changes nothing"
    logs.delete_retention_policy(logGroupName=group)
    (info,) = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert "retentionInDays" not in info
    expect_error("ResourceNotFoundException", logs.put_retention_policy, logGroupName=group + "-nope", retentionInDays=1)
    logs.create_log_stream(logGroupName=group, logStreamName="my-stream:1".replace(":", "-"))
    expect_error("ResourceAlreadyExistsException", logs.create_log_stream, logGroupName=group, logStreamName="my-stream-1")
    now = int(time.time() * 1000)
    resp = logs.put_log_events(logGroupName=group, logStreamName="my-stream-1",
                               logEvents=[{"timestamp": now - 1, "message": "one"}, {"timestamp": now, "message": "two"}])
    assert "rejectedLogEventsInfo" not in resp
    (stream,) = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert stream["logStreamName"] == "my-stream-1" and stream["lastEventTimestamp"] == now
    events = logs.get_log_events(logGroupName=group, logStreamName="my-stream-1", startFromHead=True)["events"]
    assert [e["message"] for e in events] == ["one", "two"]
    logs.delete_log_group(logGroupName=group)
    assert not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]


def test_dot_group_names_stay_inside_the_logs(lam, logs):
    """`..` is a valid CloudWatch group name; creating and deleting it touches nothing else."""
    name = unique_name("dots")
    create_function(lam, name, make_zip([("app.py", PY_TRACE)]))
    invoke_ok(lam, name)
    for group in ("..", ".", "/.."):
        logs.create_log_group(logGroupName=group)
        assert [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]][:1] == [group]
        logs.delete_log_group(logGroupName=group)
    invoke_ok(lam, name)
    assert logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")["logGroups"]


def test_retention_is_enforced_by_the_sweeper(lam, logs):
    """Events three days old survive sweeps without a retention policy and are deleted by the
    next sweep once a 1-day policy is set; a stream with recent events stays."""
    group = f"/app/{unique_name('ret')}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="old")
    logs.create_log_stream(logGroupName=group, logStreamName="recent")
    now = int(time.time() * 1000)
    three_days = 3 * 86_400_000
    logs.put_log_events(logGroupName=group, logStreamName="old",
                        logEvents=[{"timestamp": now - three_days + i, "message": f"old {i}"} for i in range(5)])
    logs.put_log_events(logGroupName=group, logStreamName="recent", logEvents=[{"timestamp": now, "message": "fresh"}])
    time.sleep(2.5)  # two sweeps at 1 s: nothing expires without a policy
    names = {s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]}
    assert names == {"old", "recent"}
    logs.put_retention_policy(logGroupName=group, retentionInDays=1)
    poll_until(lambda: {s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]} == {"recent"},
               10, what="the expired stream to be swept")
    assert messages(logs, group) == ["fresh"]
    # A policy shorter than an event's age refuses it at ingestion, as CloudWatch does.
    resp = logs.put_log_events(logGroupName=group, logStreamName="recent",
                               logEvents=[{"timestamp": now - three_days, "message": "late"}])
    assert resp["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 0}
    logs.put_log_events(logGroupName=group, logStreamName="recent", logEvents=[{"timestamp": now + 1, "message": "ok"}])
    assert messages(logs, group) == ["fresh", "ok"]


def test_aws_cli_reads_function_logs(srv, lam):
    name = unique_name("clilogs")
    create_function(lam, name, make_zip([("app.py", PY_TRACE)]))
    invoke_ok(lam, name)
    group = f"/aws/lambda/{name}"

    def cli(*args):
        p = run(aws_cli() + ["logs", *args, "--output", "json"], env=srv.env)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout) if p.stdout.strip() else {}

    streams = poll_until(lambda: cli("describe-log-streams", "--log-group-name", group)["logStreams"], 10)
    stream = streams[0]["logStreamName"]
    assert re.match(r"^\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}$", stream)
    events = cli("get-log-events", "--log-group-name", group, "--log-stream-name", stream, "--start-from-head")["events"]
    assert any(e["message"].startswith("TRACE Root=1-") for e in events)
    found = cli("filter-log-events", "--log-group-name", group, "--filter-pattern", "REPORT")["events"]
    assert len(found) == 1 and found[0]["logStreamName"] == stream
    cli("put-retention-policy", "--log-group-name", group, "--retention-in-days", "30")
    (info,) = cli("describe-log-groups", "--log-group-name-prefix", group)["logGroups"]
    assert info["retentionInDays"] == 30
    cli("create-log-group", "--log-group-name", group + "-extra")
    p = run(aws_cli() + ["logs", "create-log-group", "--log-group-name", group + "-extra"], env=srv.env)
    assert p.returncode != 0 and "ResourceAlreadyExistsException" in p.stderr


# -- Flood protection -----------------------------------------------------------------------------


def test_stdout_flood_is_capped_and_rate_limited(lam, logs):
    flood = unique_name("flood")
    create_function(lam, flood, make_zip([("app.py", FLOOD)]), Timeout=4)
    other = unique_name("calm")
    create_function(lam, other, make_zip([("app.py", PY_TRACE)]))
    invoke_ok(lam, other)  # warm
    latencies: list[float] = []
    done = threading.Event()

    def calm_invocations():
        while not done.is_set():
            t = time.monotonic()
            invoke_ok(lam, other)
            latencies.append(time.monotonic() - t)
            time.sleep(0.1)

    worker = threading.Thread(target=calm_invocations)
    worker.start()
    try:
        for _ in range(2):  # two environments, two streams: the older is dropped to fit the cap
            resp = lam.invoke(FunctionName=flood, Payload=b"{}")
            assert resp.get("FunctionError") == "Unhandled"
            assert json.loads(resp["Payload"].read())["errorType"] == "Sandbox.Timedout"
    finally:
        done.set()
        worker.join()
    assert len(latencies) >= 10, latencies
    assert statistics.median(latencies) < 0.5 and max(latencies) < 2.0, latencies
    group = f"/aws/lambda/{flood}"

    def fits():
        (info,) = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
        return info if info["storedBytes"] <= CAP + 4096 else None

    poll_until(fits, 10, what="the flood's log group to fit its cap")
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert len(streams) == 1, "the older stream was dropped"
    msgs = messages(logs, group)
    notices = [m for m in msgs if m.startswith("LOGS_DROPPED ")]
    assert len(notices) == 1, notices
    assert re.match(r"^LOGS_DROPPED Dropped \d+ lines \(\d+ bytes\) of function output: ", notices[0])
    flood_lines = [m for m in msgs if m.startswith("flood ")]
    assert 0 < len(flood_lines) * 213 <= CAP
    assert any(m.startswith("REPORT ") for m in msgs), "platform lines are always written"
    invoke_ok(lam, other)


# -- Trace ids ------------------------------------------------------------------------------------


def test_trace_ids_sync_and_generated(lam):
    py = unique_name("tracepy")
    create_function(lam, py, make_zip([("app.py", PY_TRACE)]))
    node = unique_name("tracenode")
    create_function(lam, node, make_zip([("index.mjs", NODE_TRACE)]), Runtime="nodejs20.x", Handler="index.handler")
    given = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    for fn in (py, node):
        client = lam
        client.meta.events.register_first("before-sign.lambda.Invoke", _add_trace_header(given), unique_id="trace-" + fn)
        try:
            _, body = invoke_ok(client, fn)
        finally:
            client.meta.events.unregister("before-sign.lambda.Invoke", unique_id="trace-" + fn)
        assert body["trace"] == given
        _, first = invoke_ok(lam, fn)
        _, second = invoke_ok(lam, fn)
        assert TRACE_RE.match(first["trace"]) and TRACE_RE.match(second["trace"]), first
        assert first["trace"] != second["trace"], "each invocation gets its own trace"


def _add_trace_header(value):
    def handler(request, **_):
        request.headers["X-Amzn-Trace-Id"] = value

    return handler


def test_trace_ids_into_async_and_destination_invocations(lam, logs):
    source = unique_name("tracesrc")
    target = unique_name("tracedst")
    create_function(lam, source, make_zip([("app.py", PY_TRACE)]))
    create_function(lam, target, make_zip([("app.py", PY_TRACE)]))
    target_arn = lam.get_function_configuration(FunctionName=target)["FunctionArn"]
    lam.put_function_event_invoke_config(FunctionName=source, DestinationConfig={"OnSuccess": {"Destination": target_arn}})
    given = "Root=1-5759e988-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=0"
    lam.meta.events.register_first("before-sign.lambda.Invoke", _add_trace_header(given), unique_id="trace-async")
    try:
        lam.invoke(FunctionName=source, InvocationType="Event", Payload=b"{}")
    finally:
        lam.meta.events.unregister("before-sign.lambda.Invoke", unique_id="trace-async")
    for fn in (source, target):
        msgs = wait_messages(logs, f"/aws/lambda/{fn}", lambda ms: any(m.startswith("TRACE ") for m in ms), timeout=30)
        assert f"TRACE {given}" in msgs, (fn, msgs)
    # Without a header, the async event gets a generated trace that its destination continues.
    lam.invoke(FunctionName=source, InvocationType="Event", Payload=b"{}")
    msgs = wait_messages(logs, f"/aws/lambda/{target}", lambda ms: len([m for m in ms if m.startswith("TRACE ")]) == 2, timeout=30)
    generated = [m[len("TRACE "):] for m in msgs if m.startswith("TRACE ")][1]
    assert TRACE_RE.match(generated), generated
    assert f"TRACE {generated}" in messages(logs, f"/aws/lambda/{source}")


def test_trace_ids_into_sqs_mapping_invocations(lam, logs, sqs):
    """A message's `AWSTraceHeader` system attribute continues into the function; a message
    without one starts a new trace."""
    url = sqs.create_queue(QueueName=unique_name("tracehdr"))["QueueUrl"]
    given = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": given}})
    (msg,) = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["AWSTraceHeader"])["Messages"]
    assert msg["Attributes"] == {"AWSTraceHeader": given}
    expect_error("InvalidParameterValue", sqs.send_message, QueueUrl=url, MessageBody="x",
                 MessageSystemAttributes={"AWSTraceHeader": {"DataType": "Number", "StringValue": "1"}})

    name = unique_name("tracesqs")
    create_function(lam, name, make_zip([("app.py", PY_TRACE)]))
    url = sqs.create_queue(QueueName=unique_name("traceq"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    mapping = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=1)
    try:
        poll_until(lambda: lam.get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Enabled", 20)
        sqs.send_message(QueueUrl=url, MessageBody="traced", MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": given}})
        msgs = wait_messages(logs, f"/aws/lambda/{name}", lambda ms: any(m.startswith("TRACE ") for m in ms), timeout=30)
        assert [m for m in msgs if m.startswith("TRACE ")] == [f"TRACE {given}"]
        sqs.send_message(QueueUrl=url, MessageBody="untraced")
        msgs = wait_messages(logs, f"/aws/lambda/{name}", lambda ms: len([m for m in ms if m.startswith("TRACE ")]) == 2, timeout=30)
        fresh = [m[len("TRACE "):] for m in msgs if m.startswith("TRACE ")][1]
        assert TRACE_RE.match(fresh) and fresh != given, fresh
    finally:
        lam.delete_event_source_mapping(UUID=mapping["UUID"])


def test_get_log_events_pages_forward_and_backward(logs):
    group = f"/app/{unique_name('pages')}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[{"timestamp": now + i, "message": f"e{i}"} for i in range(5)])

    def page(**kw):
        resp = logs.get_log_events(logGroupName=group, logStreamName="s", limit=2, **kw)
        return [e["message"] for e in resp["events"]], resp["nextForwardToken"], resp["nextBackwardToken"]

    first, fwd, back = page(startFromHead=True)
    assert first == ["e0", "e1"]
    second, fwd, _ = page(nextToken=fwd)
    third, fwd, _ = page(nextToken=fwd)
    end, end_fwd, end_back = page(nextToken=fwd)
    assert (second, third, end, end_fwd) == (["e2", "e3"], ["e4"], [], fwd), "the forward token repeats at the end"
    assert page(nextToken=back)[0] == []
    latest, _, back = page()
    assert latest == ["e3", "e4"], "without startFromHead the newest events come first"
    assert page(nextToken=back)[0] == ["e1", "e2"]
    expect_error("ResourceNotFoundException", logs.get_log_events, logGroupName=group, logStreamName="nope")
