"""Response streaming: `InvokeWithResponseStream` through boto3 (event-stream frames read
as they arrive), `RESPONSE_STREAM` function URLs read incrementally with http.client, Node's
`awslambda.streamifyResponse` / `HttpResponseStream.from`, mid-stream errors and timeouts,
non-streaming functions through the streaming paths, and a bash + curl custom runtime that
posts a chunked response with `Lambda-Runtime-Function-Response-Mode: streaming`.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.parse
import zipfile
from pathlib import Path

import pytest

from alonzo_helpers import create_function, expect_error, make_zip, unique_name

CHUNK_GAP = 0.5  # seconds the streaming handlers sleep between writes

NODE_STREAMER = r'''
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

exports.handler = awslambda.streamifyResponse(async (input, responseStream, context) => {
  const raw = input.rawPath !== undefined;  // a function URL event: the options are its body
  const event = raw ? JSON.parse(input.body || '{}') : input;
  const gap = event.gap_ms ?? 500;
  if (event.big_mb) {
    for (let i = 0; i < event.big_mb; i++) responseStream.write(Buffer.alloc(1 << 20, 97));
    responseStream.end();
    return;
  }
  if (event.mode === 'http') {
    const stream = awslambda.HttpResponseStream.from(responseStream, {
      statusCode: 201,
      headers: { 'content-type': 'text/plain', 'x-streamed': 'yes' },
      cookies: ['flavour=oat; Path=/'],
    });
    stream.write('first;');
    await sleep(gap);
    stream.write('second;');
    await sleep(gap);
    stream.end('done');
    return;
  }
  responseStream.setContentType('text/event-stream');
  const count = event.count ?? (raw ? 3 : 4);
  for (let i = 0; i < count; i++) {
    responseStream.write(`chunk-${i};`);
    if (event.fail_after === i) {
      await sleep(50);
      throw new Error('kaput after ' + i);
    }
    await sleep(raw ? 100 : gap);
  }
  if (event.hang) await sleep(60000);
  responseStream.end();
});
'''

NODE_HTTP_FAILER = r'''
exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const stream = awslambda.HttpResponseStream.from(responseStream, { statusCode: 200, headers: { 'content-type': 'text/plain' } });
  stream.write('partial body;');
  await new Promise((r) => setTimeout(r, 200));
  throw new Error('broken mid-stream');
});
'''

PY_PLAIN = '''
def handler(event, context):
    if event.get("fail"):
        raise RuntimeError("plain failure")
    if "rawPath" in event:
        return {"statusCode": 202, "headers": {"content-type": "text/plain", "x-plain": "1"}, "body": "buffered"}
    return {"hello": "world", "n": 7}
'''


def new_node(client, source: str = NODE_STREAMER, **kw) -> str:
    name = unique_name("stream")
    kw.setdefault("Timeout", 10)
    create_function(client, name, make_zip([("index.js", source)]), Runtime="nodejs20.x", Handler="index.handler", **kw)
    return name


def read_events(resp) -> tuple[list[tuple[float, bytes]], dict, list[str]]:
    """Reads a boto3 EventStream: (arrival time, payload) per chunk, the InvokeComplete
    event, and the order of event kinds."""
    chunks: list[tuple[float, bytes]] = []
    complete = None
    kinds = []
    for event in resp["EventStream"]:
        kinds.extend(event.keys())
        if "PayloadChunk" in event:
            chunks.append((time.monotonic(), event["PayloadChunk"]["Payload"]))
        if "InvokeComplete" in event:
            complete = event["InvokeComplete"]
    assert complete is not None, kinds
    assert kinds[-1] == "InvokeComplete", kinds
    return chunks, complete, kinds


def stream_invoke(client, name: str, event: dict, **kw):
    return client.invoke_with_response_stream(FunctionName=name, Payload=json.dumps(event).encode(), **kw)


@pytest.fixture(scope="module")
def streamer(lambda_client):
    name = new_node(lambda_client)
    # Warm it up, so the timing assertions below measure streaming, not a cold start.
    chunks, complete, _ = read_events(stream_invoke(lambda_client, name, {"count": 1, "gap_ms": 0}))
    assert b"".join(c for _, c in chunks) == b"chunk-0;"
    assert "ErrorCode" not in complete, complete
    return name


def test_chunks_arrive_as_they_are_written(lambda_client, streamer):
    started = time.monotonic()
    resp = stream_invoke(lambda_client, streamer, {"count": 4}, LogType="Tail")
    assert resp["StatusCode"] == 200
    assert resp["ExecutedVersion"] == "$LATEST"
    assert resp["ResponseStreamContentType"] == "application/vnd.amazon.eventstream"
    chunks, complete, kinds = read_events(resp)
    ended = time.monotonic()
    assert b"".join(c for _, c in chunks) == b"chunk-0;chunk-1;chunk-2;chunk-3;"
    # Four writes 0.5 s apart: each arrives on its own, spread over the invocation.
    assert len(chunks) >= 4, [c for _, c in chunks]
    first, last = chunks[0][0], chunks[-1][0]
    assert first - started < ended - started - 1.0, (first - started, ended - started)
    assert last - first >= 3 * CHUNK_GAP * 0.8, [round(t - started, 3) for t, _ in chunks]
    assert "ErrorCode" not in complete and "ErrorDetails" not in complete, complete
    log = base64.b64decode(complete["LogResult"]).decode()
    assert "START RequestId:" in log and "REPORT RequestId:" in log, log


def test_mid_stream_error_is_reported_in_invoke_complete(lambda_client, streamer):
    chunks, complete, _ = read_events(stream_invoke(lambda_client, streamer, {"count": 3, "fail_after": 1}))
    assert b"".join(c for _, c in chunks) == b"chunk-0;chunk-1;"
    assert complete.get("ErrorCode") == "Error", complete
    assert "kaput after 1" in complete.get("ErrorDetails", ""), complete
    # The environment is still usable afterwards.
    chunks, complete, _ = read_events(stream_invoke(lambda_client, streamer, {"count": 2, "gap_ms": 0}))
    assert b"".join(c for _, c in chunks) == b"chunk-0;chunk-1;"
    assert "ErrorCode" not in complete, complete


def test_timeout_mid_stream(lambda_client):
    name = new_node(lambda_client, Timeout=2)
    chunks, complete, _ = read_events(stream_invoke(lambda_client, name, {"count": 1, "hang": True}))
    assert b"".join(c for _, c in chunks) == b"chunk-0;"
    assert complete.get("ErrorCode") == "Sandbox.Timedout", complete
    assert "Task timed out after 2.00 seconds" in complete.get("ErrorDetails", ""), complete


def test_plain_function_through_the_streaming_api(lambda_client):
    name = unique_name("plain")
    create_function(lambda_client, name, make_zip([("app.py", PY_PLAIN)]), Timeout=10)
    chunks, complete, _ = read_events(stream_invoke(lambda_client, name, {}))
    assert len(chunks) == 1, chunks
    assert json.loads(chunks[0][1]) == {"hello": "world", "n": 7}
    assert "ErrorCode" not in complete, complete
    chunks, complete, _ = read_events(stream_invoke(lambda_client, name, {"fail": True}))
    assert chunks == []
    assert complete.get("ErrorCode") == "RuntimeError", complete
    assert complete.get("ErrorDetails") == "plain failure", complete
    # A streamed response to the ordinary Invoke is buffered.
    streamer = new_node(lambda_client)
    resp = lambda_client.invoke(FunctionName=streamer, Payload=json.dumps({"count": 3, "gap_ms": 10}).encode())
    assert "FunctionError" not in resp
    assert resp["Payload"].read() == b"chunk-0;chunk-1;chunk-2;"


def test_size_limits_of_streamed_responses(lambda_client, streamer):
    # 8 MiB streams fine (the streaming limit is 200 MiB)...
    chunks, complete, _ = read_events(stream_invoke(lambda_client, streamer, {"big_mb": 8}))
    body = b"".join(c for _, c in chunks)
    assert len(body) == 8 << 20 and body.count(b"a") == len(body)
    assert "ErrorCode" not in complete, complete
    # ...but buffered for the ordinary Invoke it exceeds the 6 MB response limit.
    resp = lambda_client.invoke(FunctionName=streamer, Payload=json.dumps({"big_mb": 8}).encode())
    assert resp.get("FunctionError") == "Unhandled"
    assert json.loads(resp["Payload"].read())["errorType"] == "Function.ResponseSizeTooLarge"
    # The next invocation gets a fresh environment and works.
    chunks, complete, _ = read_events(stream_invoke(lambda_client, streamer, {"count": 1, "gap_ms": 0}))
    assert b"".join(c for _, c in chunks) == b"chunk-0;" and "ErrorCode" not in complete


def test_errors_before_streaming_use_the_lambda_format(lambda_client, raw_client):
    expect_error("ResourceNotFoundException", lambda_client.invoke_with_response_stream,
                 FunctionName=unique_name("missing"), Payload=b"{}", status=404)
    name = unique_name("plain")
    create_function(lambda_client, name, make_zip([("app.py", PY_PLAIN)]))
    expect_error("ValidationException", raw_client.invoke_with_response_stream,
                 FunctionName=name, Payload=b"{}", InvocationType="Event", status=400)
    expect_error("InvalidRequestContentException", lambda_client.invoke_with_response_stream,
                 FunctionName=name, Payload=b"{not json", status=400)


# ---------------------------------------------------------------------------------------
# Function URLs in RESPONSE_STREAM mode
# ---------------------------------------------------------------------------------------


def stream_url(client, name: str) -> str:
    cfg = client.create_function_url_config(FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM")
    assert cfg["InvokeMode"] == "RESPONSE_STREAM"
    client.add_permission(FunctionName=name, StatementId="public", Action="lambda:InvokeFunctionUrl",
                          Principal="*", FunctionUrlAuthType="NONE")
    return cfg["FunctionUrl"]


def open_url(url: str, method: str = "POST", body: bytes | None = None, timeout: float = 30):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    conn.request(method, parts.path, body=body, headers={"content-type": "application/json"})
    return conn, conn.getresponse()


def read_incrementally(resp) -> list[tuple[float, bytes]]:
    pieces = []
    while True:
        data = resp.read1(65536)
        if not data:
            return pieces
        pieces.append((time.monotonic(), data))


def test_response_stream_url_streams_with_status_and_headers(lambda_client):
    name = new_node(lambda_client)
    url = stream_url(lambda_client, name)
    # Warm up.
    conn, resp = open_url(url, body=json.dumps({"mode": "http", "gap_ms": 0}).encode())
    assert resp.status == 201 and resp.read() == b"first;second;done"
    conn.close()
    started = time.monotonic()
    conn, resp = open_url(url, body=json.dumps({"mode": "http", "gap_ms": 800}).encode())
    headers_at = time.monotonic()
    assert resp.status == 201
    assert resp.getheader("content-type") == "text/plain"
    assert resp.getheader("x-streamed") == "yes"
    assert resp.getheader("set-cookie") == "flavour=oat; Path=/"
    assert resp.getheader("transfer-encoding") == "chunked"
    pieces = read_incrementally(resp)
    ended = time.monotonic()
    conn.close()
    assert b"".join(p for _, p in pieces) == b"first;second;done"
    # The head and the first bytes arrive while the function is still sleeping.
    assert headers_at - started < ended - started - 1.2, (headers_at - started, ended - started)
    assert pieces[0][1].startswith(b"first;")
    assert ended - pieces[0][0] >= 1.2, [(round(t - started, 3), p) for t, p in pieces]


def test_response_stream_url_without_prelude_and_buffered_functions(lambda_client):
    name = new_node(lambda_client)
    url = stream_url(lambda_client, name)
    conn, resp = open_url(url, method="GET")
    assert resp.status == 200
    assert resp.getheader("content-type") == "text/event-stream"
    assert resp.read() == b"chunk-0;chunk-1;chunk-2;"
    conn.close()
    # A function that does not stream is answered as a buffered URL would be.
    plain = unique_name("plain")
    create_function(lambda_client, plain, make_zip([("app.py", PY_PLAIN)]), Timeout=10)
    conn, resp = open_url(stream_url(lambda_client, plain), method="GET")
    assert resp.status == 202 and resp.getheader("x-plain") == "1"
    assert resp.read() == b"buffered"
    conn.close()


def test_response_stream_url_mid_stream_error_cuts_the_body(lambda_client):
    name = new_node(lambda_client, source=NODE_HTTP_FAILER)
    url = stream_url(lambda_client, name)
    conn, resp = open_url(url, method="GET")
    assert resp.status == 200
    received = b""
    with pytest.raises((http.client.IncompleteRead, ConnectionError, http.client.HTTPException)):
        while True:
            data = resp.read1(65536)
            if not data:
                break
            received += data
    conn.close()
    assert received == b"partial body;"


# ---------------------------------------------------------------------------------------
# A custom runtime speaking the Runtime API directly
# ---------------------------------------------------------------------------------------

CURL_STREAMER = r'''#!/bin/bash
set -uo pipefail
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  HEADERS="$(mktemp)"
  EVENT_DATA=$(curl -sS -LD "$HEADERS" "$API/invocation/next")
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  rm -f "$HEADERS"
  case "$EVENT_DATA" in
    *'"bogus"'*)
      STATUS=$(printf 'x' | curl -sS -o /dev/null -w '%{http_code}' -X POST "$API/invocation/$REQUEST_ID/response" \
        -H 'Lambda-Runtime-Function-Response-Mode: bogus' --data-binary @-)
      echo "bogus-mode-status $STATUS" ;;
    *)
      STATUS=$(for i in 1 2 3; do printf 'line-%s\n' "$i"; done | curl -sS -o /dev/null -w '%{http_code}' -X POST \
        "$API/invocation/$REQUEST_ID/response" \
        -H 'Lambda-Runtime-Function-Response-Mode: streaming' -H 'Transfer-Encoding: chunked' \
        -H 'Content-Type: text/plain' --data-binary @-)
      echo "streamed-status $STATUS" ;;
  esac
done
'''


def exe(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o100755 << 16
    info.create_system = 3
    return info


def test_curl_custom_runtime_streams(lambda_client):
    if not (Path("/usr/bin/curl").exists() and Path("/bin/bash").exists()):
        pytest.skip("needs /usr/bin/curl and /bin/bash on the host (they are bound into the sandbox)")
    name = unique_name("curlstream")
    create_function(lambda_client, name, make_zip([(exe("bootstrap"), CURL_STREAMER)]),
                    Runtime="provided.al2023", Handler="not.used", Timeout=10)
    chunks, complete, _ = read_events(stream_invoke(lambda_client, name, {}, LogType="Tail"))
    assert b"".join(c for _, c in chunks) == b"line-1\nline-2\nline-3\n"
    assert "ErrorCode" not in complete, complete
    assert "streamed-status 202" in base64.b64decode(complete["LogResult"]).decode()
    # The buffered Invoke of the same function gets the whole body.
    resp = lambda_client.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in resp and resp["Payload"].read() == b"line-1\nline-2\nline-3\n"
    # Any other response mode is refused, and fails the invocation.
    resp = lambda_client.invoke(FunctionName=name, Payload=b'{"bogus":true}', LogType="Tail")
    assert resp.get("FunctionError") == "Unhandled"
    assert json.loads(resp["Payload"].read())["errorType"] == "Runtime.InvalidResponseModeHeader"
    assert "bogus-mode-status 400" in base64.b64decode(resp["LogResult"]).decode()
