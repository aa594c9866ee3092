"""Keep-alive of idle on-demand environments: `--keep-alive-policy fixed|adaptive`.

Two private servers with the same `--idle-timeout 1s`, one per policy, run the same periodic
pattern at the same time: a function invoked 14 times, 2 s after each answer. Under the
fixed policy every environment is reclaimed before the next call, so every call is a cold
start (`Init Duration` in the REPORT line of the Tail log). Under the adaptive policy the
first calls are cold too (fewer than 10 observed idle times: the fixed timeout applies), and
once the version's idle-time histogram holds 10 gaps of ~2 s its keep-alive (their 99th
percentile plus 10 %) covers the gap, and the remaining calls are warm. The keep-alive in
force is read from `/metrics` (`alonzo_keep_alive_seconds`).
"""

from __future__ import annotations

import base64
import re
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from alonzo_helpers import ALONZO_BIN, clean_base_env, create_function, make_zip, unique_name

IDLE_TIMEOUT = 1.0
GAP = 2.0
CALLS = 14
# Gaps the histogram needs before it is trusted (documented in docs/sandbox.md).
MIN_SAMPLES = 10

APP = "import os\n\ndef handler(event, context):\n    return {'pid': os.getpid()}\n"


def run_pattern(srv, name: str, out: list) -> None:
    """Invokes `name` CALLS times, GAP seconds after each answer; appends (cold, pid)."""
    client = srv.client()
    for i in range(CALLS):
        if i:
            time.sleep(GAP)
        resp = client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
        assert resp["StatusCode"] == 200 and "FunctionError" not in resp, resp
        body = resp["Payload"].read()
        tail = base64.b64decode(resp["LogResult"]).decode()
        assert "REPORT RequestId" in tail, tail
        out.append(("Init Duration" in tail, body))


def keep_alive_seconds(srv, name: str) -> float | None:
    text = urllib.request.urlopen(srv.metrics_url, timeout=5).read().decode()
    pattern = r'^alonzo_keep_alive_seconds\{[^}]*function="' + re.escape(name) + r'"[^}]*\} (\S+)$'
    m = re.search(pattern, text, re.M)
    return float(m.group(1)) if m else None


def test_adaptive_keep_alive_turns_a_periodic_pattern_warm_and_fixed_stays_cold(server_factory):
    servers = {
        policy: server_factory(extra_env={"ALONZO_IDLE_TIMEOUT": f"{IDLE_TIMEOUT}s", "ALONZO_KEEP_ALIVE_POLICY": policy}).start()
        for policy in ("fixed", "adaptive")
    }
    names = {}
    for policy, srv in servers.items():
        names[policy] = unique_name(f"ka-{policy}")
        create_function(srv.client(), names[policy], make_zip([("app.py", APP)]), Handler="app.handler")
    results: dict[str, list] = {p: [] for p in servers}
    errors: list[BaseException] = []

    def drive(policy):
        try:
            run_pattern(servers[policy], names[policy], results[policy])
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=drive, args=(p,)) for p in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    # Read right after the last call, while its environment is idle.
    fixed_keep = keep_alive_seconds(servers["fixed"], names["fixed"])
    adaptive_keep = keep_alive_seconds(servers["adaptive"], names["adaptive"])

    fixed = [cold for cold, _ in results["fixed"]]
    adaptive = [cold for cold, _ in results["adaptive"]]
    assert len(fixed) == len(adaptive) == CALLS
    # Fixed: the 1 s timer reclaims every environment within the 2 s gap.
    assert all(fixed), f"fixed policy: cold starts {fixed}"
    assert fixed_keep == pytest.approx(IDLE_TIMEOUT)
    # Adaptive: the first call and the calls while fewer than 10 gaps are known run under the
    # same 1 s timer, so they are cold; after that the keep-alive covers the 2 s gap.
    assert all(adaptive[: MIN_SAMPLES + 1]), f"adaptive policy, before 10 gaps: {adaptive}"
    # The keep-alive exceeds the gap by about 10-20 %: a client stalled longer than that on a
    # loaded machine makes one call cold, so two of the last three must be warm (under the
    # fixed policy all are cold), each in the environment of the call before it.
    after = results["adaptive"][MIN_SAMPLES + 1 :]
    assert sum(not cold for cold, _ in after) >= 2, f"adaptive policy, after 10 gaps: {adaptive}"
    calls = results["adaptive"]
    for i in range(MIN_SAMPLES + 1, CALLS):
        if not calls[i][0]:
            assert calls[i][1] == calls[i - 1][1], f"warm call {i} did not reuse the environment of call {i - 1}"
    assert adaptive_keep is not None and GAP < adaptive_keep < 2 * GAP, adaptive_keep


def test_adaptive_keep_alive_reclaims_a_stopped_function_after_its_keep_alive(server_factory):
    """A burst (calls 100 ms apart) gives a keep-alive of --keep-alive-min (1 s), well under
    the 5 s --idle-timeout: the environment is gone soon after the burst stops, and the next
    call is cold. Under the fixed policy it would still be warm 2.5 s later."""
    srv = server_factory(
        extra_env={"ALONZO_IDLE_TIMEOUT": "5s", "ALONZO_KEEP_ALIVE_POLICY": "adaptive", "ALONZO_KEEP_ALIVE_MIN": "1s"}
    ).start()
    client = srv.client()
    name = unique_name("ka-burst")
    create_function(client, name, make_zip([("app.py", APP)]), Handler="app.handler")
    colds = []
    for _ in range(15):
        resp = client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
        colds.append("Init Duration" in base64.b64decode(resp["LogResult"]).decode())
        time.sleep(0.1)
    assert colds[0] and not any(colds[1:]), colds
    keep = keep_alive_seconds(srv, name)
    assert keep == pytest.approx(1.0), keep
    time.sleep(2.5)
    resp = client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    assert "Init Duration" in base64.b64decode(resp["LogResult"]).decode(), "the idle environment outlived its keep-alive"


@pytest.mark.parametrize(
    "env,keyword",
    [
        ({"ALONZO_KEEP_ALIVE_POLICY": "smart"}, r"keep-alive-policy"),
        ({"ALONZO_KEEP_ALIVE_MIN": "10m", "ALONZO_KEEP_ALIVE_MAX": "1m"}, r"keep-alive-min.*keep-alive-max"),
        ({"ALONZO_KEEP_ALIVE_MAX": "soon"}, r"keep-alive-max"),
    ],
    ids=["unknown-policy", "min-above-max", "max-garbage"],
)
def test_bad_keep_alive_settings_exit_2_before_binding(tmp_path, env, keyword):
    full = clean_base_env()
    full.update(ALONZO_ACCESS_KEY_ID="AKIAALONZOTEST0000001", ALONZO_SECRET_ACCESS_KEY="secret-secret-secret-secret")
    full.update(env)
    # Hold the port: a server that bound before validating would fail on it instead.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        listen = f"127.0.0.1:{holder.getsockname()[1]}"
        p = subprocess.run(
            [str(ALONZO_BIN), "serve", "--listen", listen, "--data-dir", str(tmp_path / "data"), "--metrics-listen", "off"],
            env=full, capture_output=True, text=True, timeout=15,
        )
    out = p.stdout + p.stderr
    assert p.returncode == 2, out
    assert re.search(keyword, out, re.I), out
    assert "panicked" not in out
