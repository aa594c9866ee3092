"""The asynchronous pipeline and event source mappings against the built-in SQS-compatible
queues, all through boto3's `sqs` and `lambda` clients on the one endpoint: SQS destinations,
dead-letter queues, and SQS event source mappings (batches, partial failures, redrive,
filters, states).

A private server with a 1-second retry delay.
"""

from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.config import Config

from alonzo_helpers import create_function, expect_error, make_zip, poll_until, running_server, unique_name

FLAKY = '''
def handler(event, context):
    if event.get("fail"):
        raise ValueError("boom " + str(event.get("tag")))
    return {"echo": event}
'''

BATCH = '''
import json

def handler(event, context):
    failures = []
    for r in event["Records"]:
        print("RECORD " + json.dumps(r))
        if "poison" in r["body"]:
            failures.append({"itemIdentifier": r["messageId"]})
    print("BATCH %d" % len(event["Records"]))
    return {"batchItemFailures": failures}
'''


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("alonzo-async-sqs"), owner="session", extra_env={"ALONZO_ASYNC_RETRY_DELAY": "1s"}) as s:
        yield s


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client()


@pytest.fixture(scope="module")
def sqs(srv):
    session = boto3.session.Session(aws_access_key_id=srv.access_key, aws_secret_access_key=srv.secret_key, region_name=srv.region)
    return session.client("sqs", endpoint_url=srv.endpoint, config=Config(retries={"total_max_attempts": 1}))


def queue(sqs, **attributes) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=unique_name("q"), Attributes={k: str(v) for k, v in attributes.items()})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def fn(lam, code: str, **kw) -> str:
    name = unique_name("asqs")
    create_function(lam, name, make_zip([("app.py", code)]), **kw)
    return name


def receive_all(sqs, url: str, expect: int, timeout: float = 30) -> list[dict]:
    got: list[dict] = []
    deadline = time.time() + timeout
    while len(got) < expect and time.time() < deadline:
        r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"], AttributeNames=["All"])
        for m in r.get("Messages", []):
            got.append(m)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return got


def send_event(lam, name, event) -> str:
    r = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(event).encode())
    assert r["StatusCode"] == 202
    return r["ResponseMetadata"]["RequestId"]


def test_sqs_destinations_receive_the_invocation_record(srv, lam, sqs):
    ok_url, ok_arn = queue(sqs)
    fail_url, fail_arn = queue(sqs)
    name = fn(lam, FLAKY)
    lam.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=2, DestinationConfig={"OnSuccess": {"Destination": ok_arn}, "OnFailure": {"Destination": fail_arn}}
    )
    good = send_event(lam, name, {"tag": "g"})
    bad = send_event(lam, name, {"fail": True, "tag": "b"})
    [success] = receive_all(sqs, ok_url, 1)
    rec = json.loads(success["Body"])
    assert rec["requestContext"]["requestId"] == good
    assert rec["requestContext"]["condition"] == "Success"
    assert rec["requestContext"]["approximateInvokeCount"] == 1
    assert rec["responsePayload"] == {"echo": {"tag": "g"}}
    [failure] = receive_all(sqs, fail_url, 1)
    rec = json.loads(failure["Body"])
    assert rec["requestContext"]["requestId"] == bad
    assert rec["requestContext"]["condition"] == "RetriesExhausted"
    assert rec["requestContext"]["approximateInvokeCount"] == 3, "retries + 1"
    assert rec["requestPayload"] == {"fail": True, "tag": "b"}
    assert rec["responseContext"]["functionError"] == "Unhandled"
    assert rec["responsePayload"]["errorType"] == "ValueError"


def test_dead_letter_queue_gets_the_original_event_with_attributes(srv, lam, sqs):
    dlq_url, dlq_arn = queue(sqs)
    dest_url, dest_arn = queue(sqs)
    name = fn(lam, FLAKY, DeadLetterConfig={"TargetArn": dlq_arn})
    assert lam.get_function_configuration(FunctionName=name)["DeadLetterConfig"] == {"TargetArn": dlq_arn}
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0, DestinationConfig={"OnFailure": {"Destination": dest_arn}})
    rid = send_event(lam, name, {"fail": True, "tag": "dlq"})
    [message] = receive_all(sqs, dlq_url, 1)
    assert json.loads(message["Body"]) == {"fail": True, "tag": "dlq"}, "the event, unchanged"
    attrs = message["MessageAttributes"]
    assert attrs["RequestID"] == {"StringValue": rid, "DataType": "String"}
    assert attrs["ErrorCode"]["DataType"] == "Number"
    assert attrs["ErrorMessage"]["DataType"] == "String"
    assert "boom dlq" in attrs["ErrorMessage"]["StringValue"]
    # With both configured, the destination gets the record too (as on Lambda).
    [record] = receive_all(sqs, dest_url, 1)
    assert json.loads(record["Body"])["requestContext"]["requestId"] == rid


def test_undeliverable_destination_is_retried_not_dropped(srv, lam, sqs):
    """A destination queue that does not exist yet: the record is kept and delivered once
    the queue appears."""
    name = fn(lam, FLAKY)
    qname = unique_name("later")
    arn = f"arn:aws:sqs:{srv.region}:{srv.account}:{qname}"
    lam.put_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": arn}})
    rid = send_event(lam, name, {"tag": "late"})
    poll_until(lambda: "delivering an asynchronous invocation's outcome failed" in srv.log_text(), timeout=30, what="a logged delivery failure")
    url = sqs.create_queue(QueueName=qname)["QueueUrl"]
    [message] = receive_all(sqs, url, 1, timeout=60)
    assert json.loads(message["Body"])["requestContext"]["requestId"] == rid


def mapping_state(lam, uuid):
    return lam.get_event_source_mapping(UUID=uuid)["State"]


def log_text(srv, name):
    d = srv.data_dir / "logs" / f"aws-lambda-{name}"
    return "".join(p.read_text() for p in sorted(d.glob("*.log"))) if d.is_dir() else ""


def test_event_source_mapping_partial_batch_failure_and_redrive(srv, lam, sqs):
    dlq_url, dlq_arn = queue(sqs)
    url, arn = queue(sqs, VisibilityTimeout=2, RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}))
    name = fn(lam, BATCH)
    for body in ["a", "b", "poison", "c"]:
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes={"kind": {"DataType": "String", "StringValue": "k-" + body}})
    m = lam.create_event_source_mapping(FunctionName=name, EventSourceArn=arn, BatchSize=10, MaximumBatchingWindowInSeconds=1, FunctionResponseTypes=["ReportBatchItemFailures"])
    assert m["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert m["State"] == "Creating"
    assert m["FunctionArn"] == srv.function_arn(name)
    assert m["EventSourceArn"] == arn and m["BatchSize"] == 10
    poll_until(lambda: mapping_state(lam, m["UUID"]) == "Enabled", timeout=10, what="Enabled")
    # The poisoned message ends in the queue's dead-letter queue after maxReceiveCount
    # receives; the others are processed once and deleted.
    [dead] = receive_all(sqs, dlq_url, 1, timeout=60)
    assert dead["Body"] == "poison"
    text = log_text(srv, name)
    records = [json.loads(line.split("RECORD ", 1)[1]) for line in text.splitlines() if "RECORD " in line]
    bodies = [r["body"] for r in records]
    for body in "abc":
        assert bodies.count(body) == 1, bodies
    assert bodies.count("poison") == 2
    r = next(r for r in records if r["body"] == "a")
    assert r["eventSource"] == "aws:sqs" and r["eventSourceARN"] == arn and r["awsRegion"] == srv.region
    assert r["messageAttributes"]["kind"]["stringValue"] == "k-a"
    assert r["messageAttributes"]["kind"]["dataType"] == "String"
    assert r["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(r["attributes"])
    assert r["md5OfBody"] == "0cc175b9c0f1b6a831c399e269772661"
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_event_source_mapping_filters_and_states(srv, lam, sqs):
    url, arn = queue(sqs)
    name = fn(lam, BATCH)
    m = lam.create_event_source_mapping(
        FunctionName=name, EventSourceArn=arn, BatchSize=5, FilterCriteria={"Filters": [{"Pattern": json.dumps({"body": {"kind": ["order"]}})}]}
    )
    uuid = m["UUID"]
    assert json.loads(m["FilterCriteria"]["Filters"][0]["Pattern"]) == {"body": {"kind": ["order"]}}
    poll_until(lambda: mapping_state(lam, uuid) == "Enabled", timeout=10, what="Enabled")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "order", "n": 1}))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "refund", "n": 2}))
    sqs.send_message(QueueUrl=url, MessageBody="not json")
    poll_until(lambda: "order" in log_text(srv, name), timeout=30, what="the matching record")

    def drained():
        a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return a["ApproximateNumberOfMessages"] == "0" and a["ApproximateNumberOfMessagesNotVisible"] == "0"

    poll_until(drained, timeout=30, what="non-matching messages deleted")
    text = log_text(srv, name)
    assert "refund" not in text and "not json" not in text
    # Disable: messages stay in the queue.
    lam.update_event_source_mapping(UUID=uuid, Enabled=False)
    poll_until(lambda: mapping_state(lam, uuid) == "Disabled", timeout=10, what="Disabled")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "order", "n": 3}))
    time.sleep(2)
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"] == "1"
    lam.update_event_source_mapping(UUID=uuid, Enabled=True, BatchSize=1)
    poll_until(lambda: mapping_state(lam, uuid) == "Enabled", timeout=10, what="Enabled again")
    poll_until(lambda: log_text(srv, name).count("BATCH") >= 2, timeout=30, what="the queued message processed")
    listed = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
    assert [x["UUID"] for x in listed] == [uuid]
    assert lam.list_event_source_mappings(EventSourceArn=arn)["EventSourceMappings"][0]["BatchSize"] == 1
    d = lam.delete_event_source_mapping(UUID=uuid)
    assert d["State"] == "Deleting"
    poll_until(lambda: not lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"], timeout=10, what="deleted")
    expect_error("ResourceNotFoundException", lam.get_event_source_mapping, UUID=uuid)


def test_event_source_mapping_validation(srv, lam, sqs):
    url, arn = queue(sqs)
    name = fn(lam, BATCH)
    raw = srv.client(validate=False)
    expect_error("ResourceNotFoundException", lam.create_event_source_mapping, FunctionName=unique_name("nofn"), EventSourceArn=arn)
    expect_error("InvalidParameterValueException", lam.create_event_source_mapping, FunctionName=name, EventSourceArn=arn + "-missing")
    expect_error("InvalidParameterValueException", lam.create_event_source_mapping, FunctionName=name, EventSourceArn=arn, BatchSize=100)
    expect_error("ValidationException", raw.create_event_source_mapping, FunctionName=name, EventSourceArn=arn, BatchSize=0)
    expect_error("InvalidParameterValueException", lam.create_event_source_mapping, FunctionName=name, EventSourceArn=arn, FilterCriteria={"Filters": [{"Pattern": "not json"}]})
    expect_error("ValidationException", raw.create_event_source_mapping, FunctionName=name, EventSourceArn=arn, FunctionResponseTypes=["Nope"])
    assert lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"] == []
    m = lam.create_event_source_mapping(FunctionName=name, EventSourceArn=arn, Enabled=False)
    expect_error("ResourceConflictException", lam.create_event_source_mapping, FunctionName=name, EventSourceArn=arn)
    poll_until(lambda: mapping_state(lam, m["UUID"]) == "Disabled", timeout=10, what="Disabled")
    lam.delete_event_source_mapping(UUID=m["UUID"])
