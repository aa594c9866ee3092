"""OpenTelemetry export of platform spans: a collector stand-in on 127.0.0.1 receives OTLP/HTTP,
decoded with the official `opentelemetry-proto` messages (protobuf) or as OTLP JSON; the spans
must carry the invocation's X-Ray trace (given by the caller or generated), the caller's parent,
Lambda's phases (Initialization only on cold starts), the request ids boto3 saw, errors, and the
asynchronous queue wait. Private servers (they are configured with an endpoint).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from alonzo_helpers import (
    ALONZO_BIN,
    clean_base_env,
    create_function,
    free_port,
    make_zip,
    poll_until,
    run,
    running_server,
    unique_name,
)

APP = '''
import os
def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"trace": os.environ["_X_AMZN_TRACE_ID"]}
'''

TRACE = "Root=1-{epoch}-{rand};Parent=53995c3f42cd8ad8;Sampled=1"


class Collector:
    """Accepts OTLP/HTTP trace exports and keeps every span, flattened to dicts."""

    def __init__(self):
        self.spans: list[dict] = []
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ctype = self.headers.get("Content-Type", "")
                with collector.lock:
                    collector.requests.append((self.path, ctype))
                    collector.spans.extend(decode(body, ctype))
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def of_trace(self, trace_hex: str) -> list[dict]:
        with self.lock:
            return [s for s in self.spans if s["trace_id"] == trace_hex]

    def close(self):
        self.http.shutdown()
        self.http.server_close()


def decode(body: bytes, ctype: str) -> list[dict]:
    """OTLP → [{trace_id, span_id, parent, name, kind, start, end, attrs, status, service}]."""
    out = []
    if ctype.startswith("application/x-protobuf"):
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            service = {a.key: a.value.string_value for a in rs.resource.attributes}.get("service.name")
            for ss in rs.scope_spans:
                for s in ss.spans:
                    attrs = {}
                    for a in s.attributes:
                        v = a.value
                        attrs[a.key] = getattr(v, v.WhichOneof("value"))
                    out.append(dict(trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent=s.parent_span_id.hex(),
                                    name=s.name, kind=s.kind, start=s.start_time_unix_nano, end=s.end_time_unix_nano,
                                    attrs=attrs, status=(s.status.code, s.status.message), service=service,
                                    scope=ss.scope.name))
    else:
        assert ctype.startswith("application/json"), ctype
        req = json.loads(body)
        for rs in req["resourceSpans"]:
            service = {a["key"]: a["value"].get("stringValue") for a in rs["resource"]["attributes"]}.get("service.name")
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    attrs = {a["key"]: next(iter(a["value"].values())) for a in s.get("attributes", [])}
                    status = s.get("status", {})
                    out.append(dict(trace_id=s["traceId"].lower(), span_id=s["spanId"].lower(), parent=s.get("parentSpanId", "").lower(),
                                    name=s["name"], kind=s["kind"], start=int(s["startTimeUnixNano"]), end=int(s["endTimeUnixNano"]),
                                    attrs=attrs, status=(status.get("code", 0), status.get("message", "")), service=service,
                                    scope=ss["scope"]["name"]))
    return out


def new_trace() -> tuple[str, str]:
    import os
    import time
    epoch, rand = f"{int(time.time()):08x}", os.urandom(12).hex()
    return TRACE.format(epoch=epoch, rand=rand), epoch + rand


def header_root(trace_hex: str) -> str:
    return f"Root=1-{trace_hex[:8]}-{trace_hex[8:]}"


def with_trace_header(client, header: str):
    def add(request, **_):
        request.headers["X-Amzn-Trace-Id"] = header
    client.meta.events.register("before-sign.lambda.Invoke", add)
    return lambda: client.meta.events.unregister("before-sign.lambda.Invoke", add)


@pytest.fixture(scope="module")
def collector():
    c = Collector()
    yield c
    c.close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, collector):
    env = {"ALONZO_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "alonzo-under-test",
           "ALONZO_ASYNC_RETRY_DELAY": "1s"}
    with running_server(tmp_path_factory.mktemp("alonzo-otel"), extra_env=env) as s:
        yield s


def test_cold_and_warm_invocations_become_spans_in_the_callers_trace(srv, collector):
    client = srv.client()
    name = unique_name("otel")
    create_function(client, name, make_zip([("app.py", APP)]), Handler="app.handler")
    header, trace_hex = new_trace()
    stop = with_trace_header(client, header)
    try:
        cold = client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
        warm = client.invoke(FunctionName=name, Payload=b"{}")
        failed = client.invoke(FunctionName=name, Payload=b'{"fail": true}')
    finally:
        stop()
    assert "FunctionError" in failed and "FunctionError" not in cold
    ids = [r["ResponseMetadata"]["RequestId"] for r in (cold, warm, failed)]
    seen = [json.loads(r["Payload"].read())["trace"] for r in (cold, warm)]
    spans = poll_until(lambda: (s := collector.of_trace(trace_hex)) and len(s) >= 7 and s, timeout=20,
                       what="7 spans of the trace at the collector")
    assert all(path == "/v1/traces" and ctype == "application/x-protobuf" for path, ctype in collector.requests)
    roots = {s["attrs"]["faas.invocation_id"]: s for s in spans if s["name"] == "Invoke"}
    assert set(roots) == set(ids)
    for rid, root in roots.items():
        assert root["parent"] == "53995c3f42cd8ad8"  # the caller's span
        assert root["kind"] == 2  # SERVER
        assert root["service"] == "alonzo-under-test" and root["scope"] == "alonzo"
        assert root["attrs"]["faas.name"] == name and root["attrs"]["faas.version"] == "$LATEST"
        assert root["attrs"]["faas.max_memory"] == 128 * 1024 * 1024
        assert root["end"] > root["start"]
        children = [s for s in spans if s["parent"] == root["span_id"]]
        names = sorted(c["name"] for c in children)
        assert names == (["Initialization", "Invocation"] if rid == ids[0] else ["Invocation"]), (rid, names)
        for c in children:
            assert root["start"] <= c["start"] <= c["end"] <= root["end"]
    # The function saw the same root and Sampled flag, with the platform's Invoke span as its
    # parent (so what it traces nests under the platform's spans, as on Lambda).
    for rid, header in zip(ids, seen):
        root, parent, sampled = header.split(";")
        assert root == header_root(trace_hex) and sampled == "Sampled=1", header
        assert parent == "Parent=" + roots[rid]["span_id"], (header, roots[rid])
    assert roots[ids[0]]["attrs"]["faas.coldstart"] is True
    assert roots[ids[1]]["attrs"]["faas.coldstart"] is False
    # The Initialization span is the REPORT line's Init Duration.
    report = base64.b64decode(cold["LogResult"]).decode()
    init_ms = float(re.search(r"Init Duration: ([\d.]+) ms", report).group(1))
    init = next(s for s in spans if s["name"] == "Initialization")
    assert abs((init["end"] - init["start"]) / 1e6 - init_ms) < 0.02, (init, init_ms)
    # The function error: status ERROR (2) with the error type, on the root and its phase.
    bad = roots[ids[2]]
    assert bad["status"][0] == 2 and bad["attrs"]["error.type"] == "ValueError" and bad["status"][1] == "ValueError", bad
    assert roots[ids[1]]["status"][0] == 0


def test_invocations_without_a_trace_header_get_a_generated_trace(srv, collector):
    client = srv.client()
    name = unique_name("otel-gen")
    create_function(client, name, make_zip([("app.py", APP)]), Handler="app.handler")
    rid = client.invoke(FunctionName=name, Payload=b"{}")["ResponseMetadata"]["RequestId"]

    def root():
        with collector.lock:
            return next((s for s in collector.spans if s["attrs"].get("faas.invocation_id") == rid and s["name"] == "Invoke"), None)

    span = poll_until(root, timeout=20, what="the invocation's span")
    assert re.fullmatch(r"[0-9a-f]{32}", span["trace_id"]) and span["trace_id"] != "0" * 32
    # A generated trace starts with the platform's span: no parent.
    assert span["parent"] == "", span


@pytest.fixture(scope="module")
def json_collector():
    c = Collector()
    yield c
    c.close()


def test_json_protocol_from_opentelemetry_variables_and_the_async_queue_wait(tmp_path, json_collector):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": json_collector.url, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
           "OTEL_BSP_SCHEDULE_DELAY": "100", "ALONZO_ASYNC_RETRY_DELAY": "1s"}
    with running_server(tmp_path, extra_env=env) as s:
        client = s.client()
        name = unique_name("otel-async")
        create_function(client, name, make_zip([("app.py", APP)]), Handler="app.handler")
        header, trace_hex = new_trace()
        stop = with_trace_header(client, header)
        try:
            resp = client.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"fail": true}')
        finally:
            stop()
        assert resp["StatusCode"] == 202
        # One attempt and two retries (MaximumRetryAttempts defaults to 2), each queued and run.
        spans = poll_until(lambda: (x := json_collector.of_trace(trace_hex)) and
                           sum(1 for y in x if y["name"] == "Invoke") == 3 and
                           sum(1 for y in x if y["name"] == "Queued") == 3 and x,
                           timeout=40, what="three attempts' spans")
    assert all(ctype.startswith("application/json") for _, ctype in json_collector.requests)
    queued = sorted((x for x in spans if x["name"] == "Queued"), key=lambda x: x["attrs"]["alonzo.async.attempt"])
    assert [int(q["attrs"]["alonzo.async.attempt"]) for q in queued] == [1, 2, 3]
    assert all(q["kind"] in (5, "SPAN_KIND_CONSUMER") and q["parent"] == "53995c3f42cd8ad8" for q in queued)
    # Every wait starts when the event was accepted; the retries waited at least the retry delay.
    assert len({q["start"] for q in queued}) == 1
    assert (queued[1]["end"] - queued[1]["start"]) / 1e9 >= 1.0
    roots = [x for x in spans if x["name"] == "Invoke"]
    assert len({r["attrs"]["faas.invocation_id"] for r in roots}) == 1
    assert all(r["status"][0] in (2, "STATUS_CODE_ERROR") for r in roots)


def test_spans_batched_at_shutdown_are_sent_before_exit(tmp_path):
    collector = Collector()
    try:
        # A schedule delay far beyond the test: only the shutdown flush can deliver them.
        env = {"ALONZO_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "600000"}
        with running_server(tmp_path, extra_env=env) as s:
            client = s.client()
            name = unique_name("otel-flush")
            create_function(client, name, make_zip([("app.py", APP)]), Handler="app.handler")
            rid = client.invoke(FunctionName=name, Payload=b"{}")["ResponseMetadata"]["RequestId"]
            assert s.stop() == 0
        assert any(x["attrs"].get("faas.invocation_id") == rid for x in collector.spans), collector.spans
    finally:
        collector.close()


@pytest.mark.parametrize("flag,value", [("--otlp-endpoint", "https://127.0.0.1:4318"), ("--otlp-endpoint", "nonsense"),
                                        ("--otlp-protocol", "grpc")])
def test_bad_otlp_settings_exit_2_before_binding(tmp_path, flag, value):
    env = clean_base_env()
    env.update(ALONZO_ACCESS_KEY_ID="AKIAALONZOTEST0000001", ALONZO_SECRET_ACCESS_KEY="secret-secret-secret-secret")
    args = [str(ALONZO_BIN), "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "data"), flag, value]
    if flag == "--otlp-protocol":
        args += ["--otlp-endpoint", "http://127.0.0.1:4318"]
    p = run(args, env=env, timeout=15)
    out = p.stdout + p.stderr
    assert p.returncode == 2, out
    assert "OTLP" in out or "otlp" in out, out
    assert not (tmp_path / "data").exists()
