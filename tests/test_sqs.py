"""The SQS-compatible queue service through boto3's `sqs` client (AWS JSON 1.0) on the
shared server: queues and their attributes, messages, attributes and their MD5s, batches,
visibility, delays, long polling, redrive, errors, and the AWS CLI.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import subprocess
import threading
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from alonzo_helpers import ACCOUNT, REGION, aws_cli, poll_until


def sqs_client(server, **config_kw):
    cfg = dict(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=60)
    cfg.update(config_kw)
    session = boto3.session.Session(
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key, region_name=server.region
    )
    return session.client("sqs", endpoint_url=server.endpoint, config=Config(**cfg))


@pytest.fixture(scope="module")
def sqs(server):
    return sqs_client(server)


def qname(prefix: str = "q") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_queue(sqs, prefix: str = "q", **attributes) -> str:
    attrs = {k: str(v) for k, v in attributes.items()}
    return sqs.create_queue(QueueName=qname(prefix), Attributes=attrs)["QueueUrl"]


def expected_attributes_md5(attributes: dict) -> str:
    """SQS's documented algorithm, implemented independently of the server."""
    buf = b""
    for name in sorted(attributes):
        a = attributes[name]
        for field in (name.encode(), a["DataType"].encode()):
            buf += struct.pack(">I", len(field)) + field
        if "BinaryValue" in a:
            buf += b"\x02" + struct.pack(">I", len(a["BinaryValue"])) + a["BinaryValue"]
        else:
            v = a["StringValue"].encode()
            buf += b"\x01" + struct.pack(">I", len(v)) + v
    return hashlib.md5(buf).hexdigest()


def code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


# -- queues ----------------------------------------------------------------------------


def test_create_get_url_list_and_delete(sqs, server):
    name = qname("life")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    assert url == f"{server.endpoint}/{ACCOUNT}/{name}"
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    # Creating again with the same (or no) attributes is idempotent.
    assert sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30"})["QueueUrl"] == url
    with pytest.raises(sqs.exceptions.QueueNameExists):
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "31"})
    assert url in sqs.list_queues(QueueNamePrefix="life-")["QueueUrls"]
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as e:
        sqs.get_queue_url(QueueName=name)
    assert code(e.value) == "AWS.SimpleQueueService.NonExistentQueue"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix=name)


def test_list_queues_pages(sqs):
    prefix = qname("page")
    urls = [sqs.create_queue(QueueName=f"{prefix}-{i}")["QueueUrl"] for i in range(5)]
    seen, token = [], None
    while True:
        kw = {"QueueNamePrefix": prefix, "MaxResults": 2}
        if token:
            kw["NextToken"] = token
        page = sqs.list_queues(**kw)
        seen += page.get("QueueUrls", [])
        token = page.get("NextToken")
        if not token:
            break
    assert seen == urls
    assert sorted(u for p in sqs.get_paginator("list_queues").paginate(QueueNamePrefix=prefix, MaxResults=2) for u in p.get("QueueUrls", [])) == urls


def test_attributes_set_and_get(sqs):
    before = int(time.time())
    url = new_queue(sqs, "attrs", VisibilityTimeout=45, DelaySeconds=0)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "45"
    assert attrs["MessageRetentionPeriod"] == "345600"
    assert attrs["MaximumMessageSize"] == "262144"
    assert attrs["ReceiveMessageWaitTimeSeconds"] == "0"
    assert attrs["QueueArn"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:{url.rsplit('/', 1)[1]}"
    assert attrs["ApproximateNumberOfMessages"] == "0"
    assert before - 1 <= int(attrs["CreatedTimestamp"]) <= time.time() + 1
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "5", "MessageRetentionPeriod": "600"})
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout", "MessageRetentionPeriod"])["Attributes"]
    assert got == {"VisibilityTimeout": "5", "MessageRetentionPeriod": "600"}
    with pytest.raises(ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "99999"})
    assert code(e.value) == "InvalidAttributeValue"
    with pytest.raises(ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Bogus": "1"})
    assert code(e.value) == "InvalidAttributeName"


def test_tags(sqs):
    name = qname("tags")
    url = sqs.create_queue(QueueName=name, tags={"team": "a"})["QueueUrl"]
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "a"}
    sqs.tag_queue(QueueUrl=url, Tags={"env": "test"})
    sqs.untag_queue(QueueUrl=url, TagKeys=["team"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"env": "test"}


# -- messages --------------------------------------------------------------------------


def test_send_receive_delete_with_attributes(sqs):
    url = new_queue(sqs, "msg")
    body = "héllo wörld ✓"
    attributes = {
        "str": {"DataType": "String", "StringValue": "value"},
        "num": {"DataType": "Number", "StringValue": "42.5"},
        "bin": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
        "custom": {"DataType": "String.custom", "StringValue": "c"},
    }
    sent = sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)
    assert sent["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()
    assert sent["MD5OfMessageAttributes"] == expected_attributes_md5(attributes)
    t0 = int(time.time() * 1000)
    got = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], AttributeNames=["All"], MaxNumberOfMessages=10)
    [m] = got["Messages"]
    assert m["MessageId"] == sent["MessageId"] and m["Body"] == body
    assert m["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert m["MessageAttributes"] == attributes
    assert m["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert m["Attributes"]["ApproximateReceiveCount"] == "1"
    assert m["Attributes"]["SenderId"]
    assert abs(int(m["Attributes"]["SentTimestamp"]) - t0) < 5000
    assert int(m["Attributes"]["ApproximateFirstReceiveTimestamp"]) >= int(m["Attributes"]["SentTimestamp"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_attribute_name_filters(sqs):
    url = new_queue(sqs, "filter")
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes={
        "a.one": {"DataType": "String", "StringValue": "1"},
        "a.two": {"DataType": "String", "StringValue": "2"},
        "b": {"DataType": "String", "StringValue": "3"},
    })
    [m] = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["a.*"], VisibilityTimeout=0)["Messages"]
    assert set(m["MessageAttributes"]) == {"a.one", "a.two"}
    assert m["MD5OfMessageAttributes"] == expected_attributes_md5(m["MessageAttributes"])
    [m] = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["b"], MessageSystemAttributeNames=["SentTimestamp"], VisibilityTimeout=0)["Messages"]
    assert set(m["MessageAttributes"]) == {"b"} and set(m["Attributes"]) == {"SentTimestamp"}
    [m] = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)["Messages"]
    assert "MessageAttributes" not in m and "Attributes" not in m


def test_batches_with_partial_failures(sqs):
    url = new_queue(sqs, "batch")
    resp = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "ok1", "MessageBody": "one"},
        {"Id": "bad", "MessageBody": "two", "DelaySeconds": 901},
        {"Id": "ok2", "MessageBody": "three", "MessageAttributes": {"k": {"DataType": "Number", "StringValue": "1"}}},
        {"Id": "big", "MessageBody": "x" * 262_145},
    ])
    assert sorted(s["Id"] for s in resp["Successful"]) == ["ok1", "ok2"]
    assert {f["Id"]: f["Code"] for f in resp["Failed"]} == {"bad": "InvalidParameterValue", "big": "InvalidParameterValue"}
    assert all(f["SenderFault"] for f in resp["Failed"])
    msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    assert sorted(m["Body"] for m in msgs) == ["one", "three"]
    entries = [{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)]
    entries.append({"Id": "junk", "ReceiptHandle": "not-a-handle"})
    resp = sqs.delete_message_batch(QueueUrl=url, Entries=entries)
    assert sorted(s["Id"] for s in resp["Successful"]) == ["d0", "d1"]
    assert [(f["Id"], f["Code"]) for f in resp["Failed"]] == [("junk", "ReceiptHandleIsInvalid")]
    for bad, expected in [
        ([], "AWS.SimpleQueueService.EmptyBatchRequest"),
        ([{"Id": "a", "MessageBody": "x"}] * 2, "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"),
        ([{"Id": str(i), "MessageBody": "x"} for i in range(11)], "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"),
    ]:
        raw = sqs_client_novalidate(sqs)
        with pytest.raises(ClientError) as e:
            raw.send_message_batch(QueueUrl=url, Entries=bad)
        assert code(e.value) == expected


_NOVALIDATE = {}


def sqs_client_novalidate(sqs):
    key = id(sqs)
    if key not in _NOVALIDATE:
        _NOVALIDATE[key] = boto3.session.Session(
            aws_access_key_id=sqs._request_signer._credentials.access_key,
            aws_secret_access_key=sqs._request_signer._credentials.secret_key,
            region_name=sqs.meta.region_name,
        ).client("sqs", endpoint_url=sqs.meta.endpoint_url,
                 config=Config(parameter_validation=False, retries={"total_max_attempts": 1, "mode": "standard"}))
    return _NOVALIDATE[key]


def test_visibility_timeout_redelivery_and_stale_handles(sqs):
    url = new_queue(sqs, "vis", VisibilityTimeout=1)
    sqs.send_message(QueueUrl=url, MessageBody="again")
    [first] = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])["Messages"]
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    time.sleep(1.2)
    [second] = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"], WaitTimeSeconds=2)["Messages"]
    assert second["MessageId"] == first["MessageId"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    assert second["ReceiptHandle"] != first["ReceiptHandle"]
    # The stale handle deletes nothing (and is not an error), the current one does.
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"])
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="garbage")


def test_change_message_visibility(sqs):
    url = new_queue(sqs, "cmv", VisibilityTimeout=60)
    sqs.send_message(QueueUrl=url, MessageBody="m")
    [m] = sqs.receive_message(QueueUrl=url)["Messages"]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    [again] = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"
    resp = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "cur", "ReceiptHandle": again["ReceiptHandle"], "VisibilityTimeout": 1},
        {"Id": "old", "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 1},
    ])
    assert [s["Id"] for s in resp["Successful"]] == ["cur"]
    assert [f["Id"] for f in resp["Failed"]] == ["old"]
    time.sleep(1.2)
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"][0]["Body"] == "m"


def test_delay_seconds(sqs):
    url = new_queue(sqs, "delay")
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=2)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesDelayed"] == "1"
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    t0 = time.monotonic()
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)
    assert got["Messages"][0]["Body"] == "later"
    assert time.monotonic() - t0 < 4.5


def test_long_poll_returns_when_a_message_arrives(sqs, server):
    url = new_queue(sqs, "poll")
    sender = sqs_client(server)
    threading.Timer(0.5, lambda: sender.send_message(QueueUrl=url, MessageBody="wake")).start()
    t0 = time.monotonic()
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10)
    took = time.monotonic() - t0
    assert got["Messages"][0]["Body"] == "wake"
    assert 0.4 < took < 2.0, f"long poll returned after {took:.2f}s"
    t0 = time.monotonic()
    empty = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)
    took = time.monotonic() - t0
    assert "Messages" not in empty
    assert 1.9 < took < 4.0, f"empty long poll returned after {took:.2f}s"


def test_redrive_to_dead_letter_queue(sqs):
    dlq = new_queue(sqs, "dlq")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
    src = new_queue(sqs, "src", RedrivePolicy=policy)
    got = json.loads(sqs.get_queue_attributes(QueueUrl=src, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"])
    assert got == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}
    sqs.send_message(QueueUrl=src, MessageBody="poison")
    for n in (1, 2):
        [m] = sqs.receive_message(QueueUrl=src, AttributeNames=["ApproximateReceiveCount"])["Messages"]
        assert m["Attributes"]["ApproximateReceiveCount"] == str(n)
        sqs.change_message_visibility(QueueUrl=src, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    assert "Messages" not in sqs.receive_message(QueueUrl=src)
    [moved] = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=2)["Messages"]
    assert moved["Body"] == "poison" and moved["MessageId"] == m["MessageId"]
    with pytest.raises(ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=src, Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn + "x", "maxReceiveCount": 1})})
    assert code(e.value) == "InvalidParameterValue"


def test_purge(sqs):
    url = new_queue(sqs, "purge")
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(5)])
    sqs.purge_queue(QueueUrl=url)
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_errors(sqs, server):
    missing = f"{server.endpoint}/{ACCOUNT}/{qname('missing')}"
    for call in (
        lambda: sqs.send_message(QueueUrl=missing, MessageBody="x"),
        lambda: sqs.receive_message(QueueUrl=missing),
        lambda: sqs.get_queue_attributes(QueueUrl=missing),
        lambda: sqs.delete_queue(QueueUrl=missing),
    ):
        with pytest.raises(sqs.exceptions.QueueDoesNotExist):
            call()
    url = new_queue(sqs, "err")
    raw = sqs_client_novalidate(sqs)
    with pytest.raises(ClientError) as e:
        raw.receive_message(QueueUrl=url, MaxNumberOfMessages=11)
    assert code(e.value) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="bad \x01 char")
    assert code(e.value) == "InvalidMessageContents"
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x" * 262_145)
    assert code(e.value) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName="bad name!")
    assert code(e.value) == "InvalidParameterValue"
    # Unsigned or wrongly signed requests are refused like every other API call.
    bad = boto3.session.Session(aws_access_key_id=server.access_key, aws_secret_access_key="wrong", region_name=server.region).client(
        "sqs", endpoint_url=server.endpoint, config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))
    with pytest.raises(ClientError) as e:
        bad.list_queues()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_aws_cli_send_and_receive(server, sqs):
    url = new_queue(sqs, "cli")
    # AWS CLI v1 resolves SQS's legacy global endpoint despite AWS_ENDPOINT_URL, so the
    # endpoint is passed explicitly.
    cli = [*aws_cli(), "--endpoint-url", server.endpoint]
    out = subprocess.run([*cli, "sqs", "send-message", "--queue-url", url, "--message-body", "from the cli"],
                         env=server.env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    sent = json.loads(out.stdout)
    out = subprocess.run([*cli, "sqs", "receive-message", "--queue-url", url, "--wait-time-seconds", "2"],
                         env=server.env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    [m] = json.loads(out.stdout)["Messages"]
    assert m["MessageId"] == sent["MessageId"] and m["Body"] == "from the cli"
