"""Asynchronous invocation (`InvocationType=Event`): accepted means durably queued.

Private servers: a SIGKILL right after the last 202 must not lose any accepted event (they
run after the restart, at least once), and failing events are retried twice.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter

from alonzo_helpers import UUID_RE, create_function, make_zip, poll_until, unique_name

START_RE = re.compile(r"START RequestId: (?P<id>[0-9A-Za-z-]+) Version: \$LATEST")

SLOW_APP = '''
import time

def handler(event, context):
    print("async-event " + str(event.get("i")) + " " + event.get("tag", ""))
    time.sleep(0.2)
    return {"i": event.get("i")}
'''

FAILING_APP = '''
def handler(event, context):
    print("failing attempt for " + context.aws_request_id)
    raise RuntimeError("always fails")
'''


def stored_log(server, name: str) -> str:
    d = server.data_dir / "logs" / f"aws-lambda-{name}"
    if not d.is_dir():
        return ""
    return "".join(p.read_text(errors="replace") for p in sorted(d.glob("*.log")))


def start_counts(server, name: str) -> Counter:
    return Counter(m.group("id") for m in START_RE.finditer(stored_log(server, name)))


def send_event(client, name: str, event: dict) -> str:
    resp = client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(event).encode())
    assert resp["StatusCode"] == 202, resp
    assert resp["Payload"].read() == b""
    rid = resp["ResponseMetadata"]["RequestId"]
    assert rid, resp["ResponseMetadata"]
    return rid


def test_event_runs_in_background(server_factory):
    srv = server_factory().start()
    client = srv.client()
    name = unique_name("async")
    create_function(client, name, make_zip([("app.py", SLOW_APP)]), Timeout=10)
    tag = uuid.uuid4().hex
    t0 = time.monotonic()
    rid = send_event(client, name, {"i": 1, "tag": tag})
    assert time.monotonic() - t0 < 2.0, "the 202 waited for the function"
    assert UUID_RE.match(rid), rid
    poll_until(lambda: f"END RequestId: {rid}" in stored_log(srv, name), 20, what=f"async invocation {rid}")
    text = stored_log(srv, name)
    assert f"async-event 1 {tag}" in text
    time.sleep(1.0)
    assert start_counts(srv, name)[rid] == 1, "a successful async invocation ran more than once without any failure"


def test_accepted_events_survive_sigkill(server_factory):
    srv = server_factory()
    srv.start()
    client = srv.client()
    name = unique_name("durable")
    create_function(client, name, make_zip([("app.py", SLOW_APP)]), Timeout=10)
    ids = [send_event(client, name, {"i": i, "tag": "durable"}) for i in range(30)]
    srv.kill9()  # immediately after the last 202
    assert len(set(ids)) == 30, "request ids are not unique"
    ran_before_kill = sum(1 for i in ids if start_counts(srv, name)[i])
    srv.start()

    def all_started():
        counts = start_counts(srv, name)
        return counts if all(counts[i] >= 1 for i in ids) else None

    try:
        counts = poll_until(all_started, 60, interval=0.5, what="all 30 accepted events to run")
    except AssertionError:
        counts = start_counts(srv, name)
        missing = [i for i in ids if counts[i] == 0]
        raise AssertionError(
            f"{len(missing)} of 30 accepted events never ran after SIGKILL + restart "
            f"({ran_before_kill} had started before the kill): {missing}"
        )
    assert all(counts[i] >= 1 for i in ids)
    # Only our events ran.
    assert set(counts) <= set(ids), f"unknown request ids started: {set(counts) - set(ids)}"


def test_failing_event_is_retried_twice(server_factory):
    srv = server_factory(extra_env={"ALONZO_ASYNC_RETRY_DELAY": "1s"})
    srv.start()
    client = srv.client()
    name = unique_name("retry")
    create_function(client, name, make_zip([("app.py", FAILING_APP)]), Timeout=5)
    rid = send_event(client, name, {"x": 1})
    t0 = time.monotonic()
    poll_until(lambda: start_counts(srv, name)[rid] >= 3, 15, interval=0.2, what=f"3 attempts of {rid}")
    took = time.monotonic() - t0
    assert took >= 1.5, f"3 attempts within {took:.2f} s despite a 1 s retry delay"
    time.sleep(4)
    counts = start_counts(srv, name)
    assert counts[rid] == 3, f"{counts[rid]} attempts (expected 1 + 2 retries)"
    assert stored_log(srv, name).count(f"failing attempt for {rid}") == 3
    assert set(counts) == {rid}, "retries must keep the original request id"
