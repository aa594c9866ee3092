"""Usage metering and cost: `GET /_alonzo/api/usage` (signed) and `alonzo usage`.

A known workload runs on a private server started with a price file; the reported requests
and GB-seconds must equal what the REPORT lines' `Billed Duration` (read with
`LogType=Tail`) and the configured memory give, and the costs must follow the price table's
arithmetic, before and after the monthly free tier. Provisioned concurrency is billed for
the time it is configured (rounded up to five minutes) and its invocations at the
provisioned duration price; ephemeral storage above 512 MB for billed and configured time.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import re

import pytest

from alonzo_helpers import (
    ALONZO_BIN,
    console_login,
    create_function,
    make_zip,
    poll_until,
    run,
    running_server,
    sign_and_send,
    unique_name,
)

APP = '''
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    return {"ok": True}
'''

# Free tier small enough that the workload exceeds it (requests) and large enough that it
# covers part of it (GB-seconds), so both sides of the arithmetic are exercised.
PRICES = {
    "currency": "TEST",
    "request_per_million": 200000.0,  # 0.2 per request
    "gb_second_x86_64": 0.5,
    "gb_second_arm64": 0.25,
    "free_requests_per_month": 2,
    "free_gb_seconds_per_month": 0.05,
}
PER_REQUEST = PRICES["request_per_million"] / 1_000_000


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    root = tmp_path_factory.mktemp("alonzo-usage")
    prices = root / "prices.json"
    prices.write_text(json.dumps(PRICES))
    with running_server(root, extra_env={"ALONZO_PRICES": str(prices), "ALONZO_ASYNC_RETRY_DELAY": "1s"}) as s:
        yield s


@pytest.fixture(scope="module")
def client(srv):
    return srv.client()


def report_line(resp) -> str:
    tail = base64.b64decode(resp["LogResult"]).decode()
    m = re.search(r"REPORT RequestId: .*", tail)
    assert m, tail
    return m.group(0)


def billed_ms(resp) -> int:
    line = report_line(resp)
    m = re.search(r"Duration: [\d.]+ ms\s+Billed Duration: (\d+) ms\s+Memory Size: (\d+) MB", line)
    assert m, line
    return int(m.group(1)), int(m.group(2))


def usage(srv, **query) -> dict:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    r = sign_and_send(srv, "GET", "/_alonzo/api/usage" + (f"?{q}" if q else ""))
    assert r.status_code == 200, r.text
    return r.json()


def test_requests_gb_seconds_and_cost_equal_the_report_lines(srv, client):
    big, small, arm = unique_name("u-256"), unique_name("u-128"), unique_name("u-arm")
    create_function(client, big, make_zip([("app.py", APP)]), MemorySize=256)
    create_function(client, small, make_zip([("app.py", APP)]), MemorySize=128)
    create_function(client, arm, make_zip([("app.py", APP)]), MemorySize=512, Architectures=["arm64"])
    expected: dict[str, list[int]] = {big: [], small: [], arm: []}
    for name, n, sleep in ((big, 3, 0.1), (small, 2, 0), (arm, 1, 0)):
        for _ in range(n):
            r = client.invoke(FunctionName=name, LogType="Tail", Payload=json.dumps({"sleep": sleep}).encode())
            r["Payload"].read()
            billed, memory = billed_ms(r)
            assert memory == {big: 256, small: 128, arm: 512}[name]
            expected[name].append(billed)
    assert all(b >= 100 for b in expected[big]), expected

    report = poll_until(lambda: (u := usage(srv)) and sum(f["requests"] for f in u["functions"]
                                                         if f["function"] in expected) == 6 and u,
                        timeout=10, what="the metering records")
    month = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m")
    rows = {f["function"]: f for f in report["functions"] if f["function"] in expected}
    assert set(rows) == set(expected)
    for name, memory, price in ((big, 256, 0.5), (small, 128, 0.5), (arm, 512, 0.25)):
        row = rows[name]
        gb_s = sum(expected[name]) * memory / 1024 / 1000
        assert row["month"] == month
        assert row["requests"] == len(expected[name])
        assert row["billed_ms"] == sum(expected[name])
        assert row["gb_seconds"] == pytest.approx(gb_s, rel=1e-12)
        assert row["architecture"] == ("arm64" if name == arm else "x86_64")
        assert row["request_cost"] == pytest.approx(len(expected[name]) * PER_REQUEST, rel=1e-12)
        assert row["compute_cost"] == pytest.approx(gb_s * price, rel=1e-12)
        assert row["gross_cost"] == pytest.approx(row["request_cost"] + row["compute_cost"], rel=1e-12)
    assert {k: report["prices"][k] for k in PRICES} == PRICES
    # Prices the file leaves out keep Lambda's.
    assert report["prices"]["provisioned_gb_second_x86_64"] == 0.0000041667
    assert report["prices"]["provisioned_duration_gb_second_arm64"] == 0.0000077778
    assert report["prices"]["ephemeral_gb_second_x86_64"] == 0.0000000309

    # Only these functions: the free tier then applies to them as the whole account.
    only = usage(srv, function=big)
    assert [f["function"] for f in only["functions"]] == [big]
    (m,) = only["months"]
    gb_s = sum(expected[big]) * 256 / 1024 / 1000
    assert m["requests"] == 3 and m["free_requests"] == 2
    assert m["free_gb_seconds"] == pytest.approx(min(gb_s, 0.05))
    assert m["gross_cost"] == pytest.approx(3 * PER_REQUEST + gb_s * 0.5)
    assert m["cost"] == pytest.approx(1 * PER_REQUEST + max(gb_s - 0.05, 0) * 0.5)
    assert only["total_cost"] == pytest.approx(m["cost"])

    # Time range: since inclusive, until exclusive.
    tomorrow = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).strftime("%Y-%m-%d")
    yesterday = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).strftime("%Y-%m-%d")
    assert usage(srv, function=big, since=tomorrow)["functions"] == []
    assert usage(srv, function=big, until=yesterday)["functions"] == []
    assert usage(srv, function=big, since=yesterday, until=tomorrow)["functions"][0]["requests"] == 3


def test_each_async_retry_is_a_billed_invocation(srv, client):
    name = unique_name("u-retry")
    create_function(client, name, make_zip([("app.py", APP)]), MemorySize=128)
    client.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    assert client.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"fail": true}')["StatusCode"] == 202
    # One event, run twice (the first attempt and one retry): two requests, as on Lambda.
    report = poll_until(lambda: (u := usage(srv, function=name))["functions"] and u["functions"][0]["requests"] == 2 and u,
                        timeout=30, what="the retry")
    assert report["functions"][0]["errors"] == 2


def test_the_cli_prints_table_json_and_csv(srv, client):
    name = unique_name("u-cli")
    create_function(client, name, make_zip([("app.py", APP)]), MemorySize=128)
    r = client.invoke(FunctionName=name, LogType="Tail", Payload=b"{}")
    billed, _ = billed_ms(r)
    poll_until(lambda: usage(srv, function=name)["functions"], timeout=10, what="the record")

    p = run([str(ALONZO_BIN), "usage", "--function", name, "--format", "json"], env=srv.env, timeout=30)
    assert p.returncode == 0, p.stderr
    body = json.loads(p.stdout)
    assert body["functions"][0]["billed_ms"] == billed

    p = run([str(ALONZO_BIN), "usage", "--function", name, "--format", "csv"], env=srv.env, timeout=30)
    assert p.returncode == 0, p.stderr
    (row,) = list(csv.DictReader(io.StringIO(p.stdout)))
    assert row["function"] == name and row["requests"] == "1" and row["billed_ms"] == str(billed)
    assert float(row["gb_seconds"]) == pytest.approx(billed * 128 / 1024 / 1000)
    assert float(row["gross_cost"]) == pytest.approx(PER_REQUEST + billed * 128 / 1024 / 1000 * 0.5)

    p = run([str(ALONZO_BIN), "usage", "--function", name], env=srv.env, timeout=30)
    assert p.returncode == 0, p.stderr
    assert name in p.stdout and "MONTH" in p.stdout and "TEST" in p.stdout, p.stdout

    p = run([str(ALONZO_BIN), "usage", "--since", "not-a-date"], env=srv.env, timeout=30)
    assert p.returncode != 0
    assert "InvalidParameterValueException" in p.stderr and "since" in p.stderr, p.stderr


def test_usage_needs_a_signature(srv):
    import requests

    r = requests.get(f"{srv.endpoint}/_alonzo/api/usage", timeout=10)
    assert r.status_code == 403, r.text


def test_default_prices_and_free_tier(server_factory):
    s = server_factory().start()
    c = s.client()
    name = unique_name("u-free")
    create_function(c, name, make_zip([("app.py", APP)]), MemorySize=1024)
    r = c.invoke(FunctionName=name, LogType="Tail", Payload=b"{}")
    billed, _ = billed_ms(r)
    report = poll_until(lambda: (u := usage(s))["functions"] and u, timeout=10, what="the record")
    row = report["functions"][0]
    gb_s = billed / 1000
    assert report["prices"]["gb_second_x86_64"] == 0.0000166667
    assert row["gross_cost"] == pytest.approx(0.20 / 1_000_000 + gb_s * 0.0000166667)
    # Within the free tier: nothing to pay.
    assert report["months"][0]["cost"] == 0 and report["total_cost"] == 0


def test_a_bad_price_file_exits_2(tmp_path):
    from alonzo_helpers import clean_base_env, free_port

    bad = tmp_path / "prices.json"
    bad.write_text('{"request_per_million": -1}')
    env = clean_base_env()
    env.update(ALONZO_ACCESS_KEY_ID="AKIAALONZOTEST0000001", ALONZO_SECRET_ACCESS_KEY="secret-secret-secret-secret")
    p = run([str(ALONZO_BIN), "serve", "--listen", f"127.0.0.1:{free_port()}", "--metrics-listen", "off",
             "--data-dir", str(tmp_path / "data"), "--prices", str(bad)], env=env, timeout=15)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "--prices" in p.stderr and "request_per_million" in p.stderr, p.stderr


# Distinct prices per kind of charge; a free tier that covers all on-demand duration, which
# must leave provisioned concurrency, its duration and extra ephemeral storage billed.
PC_PRICES = {
    "currency": "TEST",
    "request_per_million": 1_000_000.0,  # 1 per request
    "gb_second_x86_64": 1.0,
    "provisioned_duration_gb_second_x86_64": 0.5,
    "provisioned_gb_second_x86_64": 0.001,
    "ephemeral_gb_second_x86_64": 0.01,
    "free_requests_per_month": 0,
    "free_gb_seconds_per_month": 1000.0,
}


def function_totals(report: dict, name: str) -> dict:
    """The function's rows summed (a period crossing midnight at a month's end is split)."""
    rows = [f for f in report["functions"] if f["function"] == name]
    assert rows, report
    return {k: sum(r[k] for r in rows) for k, v in rows[0].items() if isinstance(v, (int, float))}


def test_provisioned_concurrency_and_ephemeral_storage(server_factory, tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(PC_PRICES))
    s = server_factory(extra_env={"ALONZO_PRICES": str(prices)}).start()
    c = s.client()
    name = unique_name("u-pc")
    create_function(c, name, make_zip([("app.py", APP)]), MemorySize=256, EphemeralStorage={"Size": 1024})
    version = c.publish_version(FunctionName=name)["Version"]
    c.put_provisioned_concurrency_config(FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=2)
    poll_until(lambda: c.get_provisioned_concurrency_config(FunctionName=name, Qualifier=version)["Status"] == "READY",
               timeout=60, interval=0.2, what="provisioned concurrency READY")
    provisioned = []
    for _ in range(3):
        r = c.invoke(FunctionName=name, Qualifier=version, LogType="Tail", Payload=b'{"sleep": 0.05}')
        r["Payload"].read()
        assert "Init Duration" not in report_line(r), report_line(r)
        provisioned.append(billed_ms(r)[0])
    c.delete_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    # One on-demand invocation (a cold start of $LATEST, its init billed).
    r = c.invoke(FunctionName=name, LogType="Tail", Payload=b"{}")
    r["Payload"].read()
    assert "Init Duration" in report_line(r), report_line(r)
    on_demand = billed_ms(r)[0]

    def measured():
        u = usage(s, function=name)
        return u if u["functions"] and function_totals(u, name)["requests"] == 4 else None

    report = poll_until(measured, timeout=10, what="the metering records")
    row = function_totals(report, name)
    pc_ms, all_ms = sum(provisioned), sum(provisioned) + on_demand
    assert (row["requests"], row["provisioned_requests"], row["errors"]) == (4, 3, 0)
    assert row["billed_ms"] == all_ms
    assert row["gb_seconds"] == pytest.approx(all_ms / 1000 * 0.25, rel=1e-12)
    assert row["provisioned_duration_gb_seconds"] == pytest.approx(pc_ms / 1000 * 0.25, rel=1e-12)
    # 2 environments × 0.25 GB × 300 s: configured for well under 5 minutes, rounded up.
    assert row["provisioned_gb_seconds"] == 150.0
    # 0.5 GB above 512 MB × every billed second, and × 2 environments × the 300 s.
    ephemeral = all_ms / 1000 * 0.5 + 2 * 0.5 * 300
    assert row["ephemeral_gb_seconds"] == pytest.approx(ephemeral, rel=1e-12)
    on_demand_gb_s = on_demand / 1000 * 0.25
    compute = on_demand_gb_s * 1.0 + pc_ms / 1000 * 0.25 * 0.5
    assert row["compute_cost"] == pytest.approx(compute, rel=1e-12)
    assert row["provisioned_cost"] == pytest.approx(150 * 0.001, rel=1e-12)
    assert row["ephemeral_cost"] == pytest.approx(ephemeral * 0.01, rel=1e-12)
    assert row["request_cost"] == pytest.approx(4.0)
    gross = 4.0 + compute + 0.15 + ephemeral * 0.01
    assert row["gross_cost"] == pytest.approx(gross, rel=1e-12)
    # The free tier covers the on-demand GB-seconds only.
    month = {k: sum(m[k] for m in report["months"]) for k in ("free_gb_seconds", "provisioned_gb_seconds", "cost")}
    assert month["free_gb_seconds"] == pytest.approx(on_demand_gb_s, rel=1e-12)
    assert month["provisioned_gb_seconds"] == 150.0
    assert month["cost"] == pytest.approx(gross - on_demand_gb_s * 1.0, rel=1e-12)
    assert report["total_cost"] == pytest.approx(month["cost"], rel=1e-12)

    # The CLI prints the same figures.
    p = run([str(ALONZO_BIN), "usage", "--function", name, "--format", "json"], env=s.env, timeout=30)
    assert p.returncode == 0, p.stderr
    cli = json.loads(p.stdout)
    assert function_totals(cli, name) == pytest.approx(row, rel=1e-12)
    assert cli["total_cost"] == pytest.approx(report["total_cost"], rel=1e-12)
    p = run([str(ALONZO_BIN), "usage", "--function", name, "--format", "csv"], env=s.env, timeout=30)
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert sum(float(r["provisioned_gb_seconds"]) for r in rows) == 150.0
    assert sum(int(r["provisioned_requests"]) for r in rows) == 3
    p = run([str(ALONZO_BIN), "usage", "--function", name], env=s.env, timeout=30)
    assert "PROV_GB_SECONDS" in p.stdout and "EPHEMERAL_GB_SECONDS" in p.stdout, p.stdout

    # The console's usage page shows the provisioned columns.
    page = console_login(s).get(f"{s.endpoint}/_alonzo/console/usage", timeout=10)
    assert page.status_code == 200, page.text
    assert "Provisioned GB-s" in page.text and "Ephemeral GB-s" in page.text, page.text
    assert '<span class="value" id="total-provisioned">150.000</span>' in page.text, page.text

    # The ledger and records are durable: a restart changes nothing.
    s.restart()
    assert usage(s, function=name) == report
