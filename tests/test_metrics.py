"""Prometheus metrics: `/metrics` on its own address (`--metrics-listen`), scraped with urllib
and parsed with the `prometheus-client` package's OpenMetrics parser (the format the server
serves and Prometheus negotiates); counters must equal exactly what the test did.

One private server; every test uses its own functions, so label sets never collide.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from alonzo_helpers import (
    ALONZO_BIN,
    clean_base_env,
    create_function,
    free_port,
    invoke_ok,
    make_zip,
    poll_until,
    run,
    running_server,
    unique_name,
)

APP = '''
def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"ok": True}
'''


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("alonzo-metrics"), extra_env={"ALONZO_ASYNC_RETRY_DELAY": "1s"}) as s:
        yield s


@pytest.fixture(scope="module")
def client(srv):
    return srv.client()


def scrape(srv) -> dict:
    """family name -> family, from a real OpenMetrics parser (it rejects malformed text)."""
    with urllib.request.urlopen(srv.metrics_url, timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("application/openmetrics-text"), r.headers["Content-Type"]
        text = r.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families: dict, family: str, sample: str, **labels) -> float:
    """The value of the one sample of `family` named `sample` whose labels include `labels` (0 if none)."""
    f = families.get(family)
    if f is None:
        return 0
    found = [s.value for s in f.samples if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, (family, sample, labels, found)
    return found[0] if found else 0


def total(families: dict, family: str, sample: str, **labels) -> float:
    f = families.get(family)
    if f is None:
        return 0
    return sum(s.value for s in f.samples if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))


def test_counters_and_histograms_equal_what_was_done(srv, client):
    ok, failing, throttled = unique_name("m-ok"), unique_name("m-err"), unique_name("m-thr")
    for name in (ok, failing, throttled):
        create_function(client, name, make_zip([("app.py", APP)]))
    client.put_function_concurrency(FunctionName=throttled, ReservedConcurrentExecutions=0)

    n, m, k = 4, 3, 2
    for _ in range(n):
        invoke_ok(client, ok)
    for _ in range(m):
        r = client.invoke(FunctionName=failing, Payload=json.dumps({"fail": True}).encode())
        assert r["FunctionError"] == "Unhandled"
        r["Payload"].read()
    for _ in range(k):
        try:
            client.invoke(FunctionName=throttled, Payload=b"{}")
        except client.exceptions.TooManyRequestsException as e:
            assert e.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        else:
            raise AssertionError("expected a throttle")
    # Two asynchronous events that succeed: received, then run (each a separate invocation).
    for _ in range(2):
        assert client.invoke(FunctionName=ok, InvocationType="Event", Payload=b"{}")["StatusCode"] == 202

    # Invocation reports reach the metrics just after the caller has its answer, so the
    # counts are awaited, each to its exact figure, before the rest is checked.
    def all_counted():
        fam = scrape(srv)
        done = (
            value(fam, "alonzo_invocations", "alonzo_invocations_total", function=ok, version="$LATEST", outcome="success") == n + 2
            and value(fam, "alonzo_invocations", "alonzo_invocations_total", function=failing, version="$LATEST", outcome="error") == m
            and total(fam, "alonzo_errors", "alonzo_errors_total", function=failing) == m
            and value(fam, "alonzo_invocation_duration_seconds", "alonzo_invocation_duration_seconds_count", function=failing) == m
        )
        return fam if done else None

    fam = poll_until(all_counted, timeout=30, what="every invocation to be counted")

    assert value(fam, "alonzo_invocations", "alonzo_invocations_total", function=ok, outcome="error") == 0
    assert value(fam, "alonzo_invocations", "alonzo_invocations_total", function=failing, version="$LATEST", outcome="error") == m
    assert value(fam, "alonzo_invocations", "alonzo_invocations_total", function=failing, outcome="success") == 0
    assert fam["alonzo_invocations"].type == "counter"
    assert total(fam, "alonzo_errors", "alonzo_errors_total", function=failing) == m
    assert total(fam, "alonzo_errors", "alonzo_errors_total", function=ok) == 0
    # Throttled requests ran nothing.
    assert value(fam, "alonzo_throttles", "alonzo_throttles_total", function=throttled,
                 reason="ReservedFunctionConcurrentInvocationLimitExceeded") == k
    assert total(fam, "alonzo_invocations", "alonzo_invocations_total", function=throttled) == 0
    assert value(fam, "alonzo_async_events_received", "alonzo_async_events_received_total", function=ok) == 2
    assert total(fam, "alonzo_async_events_dropped", "alonzo_async_events_dropped_total", function=ok) == 0

    # Histograms: one observation per invocation; one init per cold start (at least one, at most all).
    assert fam["alonzo_invocation_duration_seconds"].type == "histogram"
    assert value(fam, "alonzo_invocation_duration_seconds", "alonzo_invocation_duration_seconds_count", function=ok) == n + 2
    assert value(fam, "alonzo_invocation_duration_seconds", "alonzo_invocation_duration_seconds_count", function=failing) == m
    assert value(fam, "alonzo_invocation_duration_seconds", "alonzo_invocation_duration_seconds_bucket", function=ok, le="+Inf") == n + 2
    assert value(fam, "alonzo_invocation_duration_seconds", "alonzo_invocation_duration_seconds_sum", function=ok) > 0
    inits = value(fam, "alonzo_init_duration_seconds", "alonzo_init_duration_seconds_count", function=ok)
    assert 1 <= inits <= n + 2
    assert value(fam, "alonzo_async_event_age_seconds", "alonzo_async_event_age_seconds_count", function=ok) == 2
    # Store latency on the invocation and asynchronous paths: every invocation looked its
    # function up, each accepted event was enqueued and completed, metering records stored.
    store = lambda op: value(fam, "alonzo_store_operation_duration_seconds", "alonzo_store_operation_duration_seconds_count", operation=op)
    assert store("get_version") >= n + m + 2
    assert store("enqueue_event") >= 2 and store("complete_event") >= 2 and store("lease_events") >= 1
    assert store("record_invocations") >= 1

    # Scrape-time gauges: nothing runs now; the warm environments are idle.
    assert value(fam, "alonzo_concurrent_executions", "alonzo_concurrent_executions", function=ok) == 0
    assert value(fam, "alonzo_environments", "alonzo_environments", function=ok, version="$LATEST", state="busy") == 0
    assert value(fam, "alonzo_environments", "alonzo_environments", function=ok, version="$LATEST", state="idle") >= 1
    assert value(fam, "alonzo_reserved_concurrency", "alonzo_reserved_concurrency", function=throttled) == 0
    assert any(s.labels.get("function") == throttled for s in fam["alonzo_reserved_concurrency"].samples)


def test_async_event_of_a_function_with_reserved_zero_is_dropped(srv, client):
    name = unique_name("m-zero")
    create_function(client, name, make_zip([("app.py", APP)]))
    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    assert client.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")["StatusCode"] == 202
    fam = poll_until(
        lambda: (f := scrape(srv)) and value(f, "alonzo_async_events_dropped", "alonzo_async_events_dropped_total", function=name) == 1 and f,
        timeout=20, what="the dropped event")
    assert value(fam, "alonzo_async_events_dropped", "alonzo_async_events_dropped_total", function=name, reason="ReservedConcurrencyZero") == 1
    assert value(fam, "alonzo_async_events_received", "alonzo_async_events_received_total", function=name) == 1


def test_queue_depths_at_scrape_time(srv):
    session = boto3.session.Session(aws_access_key_id=srv.access_key, aws_secret_access_key=srv.secret_key, region_name=srv.region)
    sqs = session.client("sqs", endpoint_url=srv.endpoint, config=Config(retries={"total_max_attempts": 1}))
    qname = unique_name("mq")
    url = sqs.create_queue(QueueName=qname)["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=600)
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=600)["Messages"]
    assert len(got) == 1
    fam = scrape(srv)
    assert fam["alonzo_queue_messages"].type == "gauge"
    assert value(fam, "alonzo_queue_messages", "alonzo_queue_messages", queue=qname, state="visible") == 2
    assert value(fam, "alonzo_queue_messages", "alonzo_queue_messages", queue=qname, state="in_flight") == 1
    assert value(fam, "alonzo_queue_messages", "alonzo_queue_messages", queue=qname, state="delayed") == 1


def test_metrics_endpoint_is_separate_from_the_api(srv):
    # The API port does not serve /metrics, the metrics port serves nothing else.
    r = urllib.request.Request(f"{srv.endpoint}/metrics")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(r, timeout=5)
    assert e.value.code in (403, 404)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/2015-03-31/functions", timeout=5)
    assert e.value.code == 404


def test_metrics_off_serves_nothing(server_factory):
    s = server_factory()
    s.command = lambda: [str(ALONZO_BIN), "serve", "--listen", f"127.0.0.1:{s.port}", "--data-dir", str(s.data_dir), "--metrics-listen", "off"]
    s.start()
    with socket.socket() as probe:
        probe.settimeout(2)
        assert probe.connect_ex(("127.0.0.1", s.metrics_port)) != 0
    assert "Prometheus" not in s.log_text()


def test_metrics_listen_from_the_environment(server_factory):
    port = free_port()
    s = server_factory(extra_env={"ALONZO_METRICS_LISTEN": f"127.0.0.1:{port}"})
    s.command = lambda: [str(ALONZO_BIN), "serve", "--listen", f"127.0.0.1:{s.port}", "--data-dir", str(s.data_dir)]
    s.start()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    assert text.rstrip().endswith("# EOF")
    families = {f.name for f in text_string_to_metric_families(text)}
    assert {"alonzo_invocations", "alonzo_throttles", "alonzo_invocation_duration_seconds", "alonzo_queue_messages"} <= families


@pytest.mark.parametrize("bad", ["9464", "localhost:9464", "127.0.0.1:99999", "nonsense"])
def test_bad_metrics_address_exits_2_before_binding(tmp_path, bad):
    env = clean_base_env()
    env.update(ALONZO_ACCESS_KEY_ID="AKIAALONZOTEST0000001", ALONZO_SECRET_ACCESS_KEY="secret-secret-secret-secret")
    port = free_port()
    p = run([str(ALONZO_BIN), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data"),
             "--metrics-listen", bad], env=env, timeout=15)
    out = p.stdout + p.stderr
    assert p.returncode == 2, out
    assert "--metrics-listen" in out and "panicked" not in out, out
    assert not (tmp_path / "data").exists()


BATCH_APP = '''
import json
def handler(event, context):
    return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"]}
'''


def test_event_source_mapping_and_destination_counters(srv, client):
    session = boto3.session.Session(aws_access_key_id=srv.access_key, aws_secret_access_key=srv.secret_key, region_name=srv.region)
    sqs = session.client("sqs", endpoint_url=srv.endpoint, config=Config(retries={"total_max_attempts": 1}))
    qname = unique_name("mesm")
    url = sqs.create_queue(QueueName=qname, Attributes={"VisibilityTimeout": "600"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for body in ("a", "bad", "b"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    name = unique_name("m-esm")
    create_function(client, name, make_zip([("app.py", BATCH_APP)]))
    client.create_event_source_mapping(FunctionName=name, EventSourceArn=arn, BatchSize=10, MaximumBatchingWindowInSeconds=1,
                                       FunctionResponseTypes=["ReportBatchItemFailures"])
    # Each batch's invocation is counted when its report is written, after the runtime asks
    # for its next event: off the poller's path, so possibly after the batch was counted.
    fam = poll_until(
        lambda: (f := scrape(srv)) and value(f, "alonzo_event_source_records", "alonzo_event_source_records_total", function=name) == 3
        and total(f, "alonzo_invocations", "alonzo_invocations_total", function=name)
        >= value(f, "alonzo_event_source_batches", "alonzo_event_source_batches_total", function=name, event_source=arn) and f,
        timeout=30, what="the mapping's batches and their invocations")
    batches = value(fam, "alonzo_event_source_batches", "alonzo_event_source_batches_total", function=name, event_source=arn)
    assert 1 <= batches <= 3
    # One invocation per batch, and only the reported record failed.
    assert total(fam, "alonzo_invocations", "alonzo_invocations_total", function=name) == batches
    assert value(fam, "alonzo_event_source_failed_records", "alonzo_event_source_failed_records_total", function=name) == 1
    # Lag: one observation per record passed, each its age since SentTimestamp (sent before
    # the mapping existed, so at least a few milliseconds, and well under the test's span).
    lag = lambda sample, **kw: value(fam, "alonzo_event_source_lag_seconds", f"alonzo_event_source_lag_seconds_{sample}",
                                     function=name, event_source=arn, **kw)
    assert lag("count") == 3
    assert 0 < lag("sum") < 3 * 60
    assert lag("bucket", le="+Inf") == 3
    # The failed record stays in flight (its visibility timeout); the others are deleted
    # (just after the batch is counted).
    poll_until(lambda: value(f := scrape(srv), "alonzo_queue_messages", "alonzo_queue_messages", queue=qname, state="in_flight") == 1
               and value(f, "alonzo_queue_messages", "alonzo_queue_messages", queue=qname, state="visible") == 0,
               timeout=10, what="the processed records to be deleted")

    # A failure destination whose queue does not exist: each delivery attempt fails.
    failing = unique_name("m-dest")
    create_function(client, failing, make_zip([("app.py", APP)]))
    missing = f"arn:aws:sqs:{srv.region}:{srv.account}:{unique_name('nope')}"
    client.put_function_event_invoke_config(FunctionName=failing, MaximumRetryAttempts=0,
                                            DestinationConfig={"OnFailure": {"Destination": missing}})
    client.invoke(FunctionName=failing, InvocationType="Event", Payload=json.dumps({"fail": True}).encode())
    # The invocation is counted when its report is written, after the runtime asks for its
    # next event: off the caller's path, so possibly after the failure was handled.
    fam = poll_until(
        lambda: (f := scrape(srv)) and value(f, "alonzo_destination_delivery_failures", "alonzo_destination_delivery_failures_total",
                                             function=failing, destination="sqs") >= 1
        and value(f, "alonzo_invocations", "alonzo_invocations_total", function=failing, outcome="error") >= 1 and f,
        timeout=30, what="a failed delivery and its invocation counted")
    assert value(fam, "alonzo_async_events_dropped", "alonzo_async_events_dropped_total", function=failing, reason="RetriesExhausted") == 1
    assert value(fam, "alonzo_invocations", "alonzo_invocations_total", function=failing, outcome="error") == 1
