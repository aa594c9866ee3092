"""Terraform's AWS provider managing the asynchronous and concurrency side of a function
against Alonzo's endpoint (Lambda and SQS): an `aws_sqs_queue` with a dead-letter redrive,
a function with reserved concurrency and a dead-letter queue, a published version with
`aws_lambda_provisioned_concurrency_config`, `aws_lambda_function_event_invoke_config` with
SQS destinations, and an `aws_lambda_event_source_mapping` from the queue: apply, the
mapping delivers, a second plan shows no change, destroy removes everything."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from alonzo_helpers import ROLE, error_code, make_zip, poll_until, unique_name
from terraform_harness import make_terraform, needs_terraform, provider_block

pytestmark = needs_terraform

APP = """
def handler(event, context):
    for r in event.get("Records", []):
        print("GOT " + r["body"])
    return {"ok": True}
"""


def main_tf(server, name: str) -> str:
    return provider_block(server, "lambda", "sqs") + f"""
resource "aws_sqs_queue" "dlq" {{
  name = "{name}-dlq"
}}

resource "aws_sqs_queue" "q" {{
  name                       = "{name}-q"
  visibility_timeout_seconds = 30
  redrive_policy = jsonencode({{
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = 3
  }})
}}

resource "aws_sqs_queue" "ok" {{
  name = "{name}-ok"
}}

resource "aws_lambda_function" "f" {{
  function_name                  = "{name}"
  role                           = "{ROLE}"
  handler                        = "app.handler"
  runtime                        = "python3.11"
  filename                       = "fn.zip"
  source_code_hash               = filebase64sha256("fn.zip")
  publish                        = true
  reserved_concurrent_executions = 5

  dead_letter_config {{
    target_arn = aws_sqs_queue.dlq.arn
  }}
}}

resource "aws_lambda_provisioned_concurrency_config" "pc" {{
  function_name                     = aws_lambda_function.f.function_name
  qualifier                         = aws_lambda_function.f.version
  provisioned_concurrent_executions = 1
}}

resource "aws_lambda_function_event_invoke_config" "eic" {{
  function_name                = aws_lambda_function.f.function_name
  maximum_retry_attempts       = 1
  maximum_event_age_in_seconds = 600

  destination_config {{
    on_success {{
      destination = aws_sqs_queue.ok.arn
    }}
    on_failure {{
      destination = aws_sqs_queue.dlq.arn
    }}
  }}
}}

resource "aws_lambda_event_source_mapping" "esm" {{
  event_source_arn = aws_sqs_queue.q.arn
  function_name    = aws_lambda_function.f.arn
  batch_size       = 5

  filter_criteria {{
    filter {{
      pattern = jsonencode({{ body = {{ kind = ["keep"] }} }})
    }}
  }}
}}

output "queue_url" {{
  value = aws_sqs_queue.q.url
}}
"""


@pytest.fixture
def tf(server, tmp_path):
    return make_terraform(server, tmp_path)


def test_terraform_queues_concurrency_and_mappings(server, lambda_client, tf):
    name = unique_name("tfasync")
    (tf.workdir / "fn.zip").write_bytes(make_zip([("app.py", APP)]))
    (tf.workdir / "main.tf").write_text(main_tf(server, name))
    session = boto3.session.Session(aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key, region_name=server.region)
    sqs = session.client("sqs", endpoint_url=server.endpoint, config=Config(retries={"total_max_attempts": 1}))

    tf("init")
    tf("apply", "-auto-approve")

    assert lambda_client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 5
    version = lambda_client.list_versions_by_function(FunctionName=name)["Versions"][-1]["Version"]
    pc = lambda_client.get_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    assert pc["RequestedProvisionedConcurrentExecutions"] == 1
    eic = lambda_client.get_function_event_invoke_config(FunctionName=name)
    assert eic["MaximumRetryAttempts"] == 1 and eic["MaximumEventAgeInSeconds"] == 600
    [mapping] = lambda_client.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
    assert mapping["BatchSize"] == 5

    url = tf("output", "-raw", "queue_url").stdout.strip()
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "keep", "n": 1}))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "drop", "n": 2}))
    log_dir = server.data_dir / "logs" / f"aws-lambda-{name}"

    def delivered():
        text = "".join(p.read_text() for p in log_dir.glob("*.log")) if log_dir.is_dir() else ""
        return "GOT" in text and text

    text = poll_until(delivered, timeout=60, what="the mapping delivered the matching message")
    assert '"keep"' in text and '"drop"' not in text

    # A second plan sees no drift.
    tf("plan", "-detailed-exitcode")

    tf("destroy", "-auto-approve")
    with pytest.raises(ClientError) as ei:
        lambda_client.get_function(FunctionName=name)
    assert error_code(ei.value) == "ResourceNotFoundException"
    assert lambda_client.list_event_source_mappings(EventSourceArn=mapping["EventSourceArn"])["EventSourceMappings"] == []
    with pytest.raises(ClientError):
        sqs.get_queue_url(QueueName=f"{name}-q")
