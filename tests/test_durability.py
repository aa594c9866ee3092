"""Crash consistency: SIGKILL during a stream of writes loses nothing that was acknowledged."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import requests
from botocore.exceptions import ClientError

from alonzo_helpers import (
    create_kwargs,
    error_code,
    list_all_functions,
    poll_until,
    python_zip,
    sha256_b64,
    wait_active,
    wait_updated,
)

ROUNDS = 3
WORKERS = 2
MAX_OPS_PER_WORKER = 600


@dataclass
class Fn:
    """What the client knows about one function: acknowledged state plus one in-flight op."""

    name: str
    exists: bool = False  # acknowledged to exist
    sha: str | None = None  # last acknowledged CodeSha256
    description: str = ""  # last acknowledged Description
    pending: tuple | None = None  # (op, value) sent but never answered
    history: list = field(default_factory=list)


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.fns: dict[str, Fn] = {}
        self.acks = 0

    def fn(self, name: str) -> Fn:
        with self.lock:
            return self.fns.setdefault(name, Fn(name))

    def ack(self) -> None:
        with self.lock:
            self.acks += 1


def worker(server, ledger: Ledger, stop: threading.Event, seed: int, errors: list) -> None:
    rnd = random.Random(seed)
    client = server.client(connect_timeout=2, read_timeout=15)
    mine: list[str] = [n for n, f in ledger.fns.items() if f.exists and f.name.startswith(f"dur{seed % WORKERS}-")]
    for _ in range(MAX_OPS_PER_WORKER):
        if stop.is_set():
            return
        roll = rnd.random()
        if not mine or roll < 0.45:
            name = f"dur{seed % WORKERS}-{uuid.uuid4().hex[:10]}"
            extra = {"blob.bin": os.urandom(rnd.choice([0, 0, 0, 64 << 10, 256 << 10]))}
            z = python_zip(extra=extra)
            op, value, call = "create", sha256_b64(z), (lambda n=name, z=z: client.create_function(**create_kwargs(n, z)))
        elif roll < 0.80:
            name = rnd.choice(mine)
            z = python_zip()
            op, value, call = "code", sha256_b64(z), (lambda n=name, z=z: client.update_function_code(FunctionName=n, ZipFile=z))
        elif roll < 0.93:
            name = rnd.choice(mine)
            d = uuid.uuid4().hex
            op, value, call = "config", d, (lambda n=name, d=d: client.update_function_configuration(FunctionName=n, Description=d))
        else:
            name = rnd.choice(mine)
            op, value, call = "delete", None, (lambda n=name: client.delete_function(FunctionName=n))
        f = ledger.fn(name)
        f.pending = (op, value)
        try:
            resp = call()
        except ClientError as e:
            # The server answered: the operation was refused and did not happen.
            f.pending = None
            if error_code(e) not in ("ResourceConflictException", "TooManyRequestsException"):
                errors.append(f"{op} {name}: unexpected {error_code(e)} {e}")
            continue
        except Exception:  # noqa: BLE001 - the server died under us: the op stays in doubt
            return
        f.pending = None
        f.history.append((op, value))
        if op == "create":
            if resp["CodeSha256"] != value:
                errors.append(f"create {name}: acknowledged sha {resp['CodeSha256']} != sent {value}")
            f.exists, f.sha = True, value
            mine.append(name)
        elif op == "code":
            f.sha = value
        elif op == "config":
            f.description = value
        else:
            f.exists = False
            mine.remove(name)
        ledger.ack()


def verify(server, ledger: Ledger) -> None:
    client = server.client(read_timeout=30)
    listed = list_all_functions(client)
    names = [f["FunctionName"] for f in listed]
    assert len(names) == len(set(names)), "ListFunctions returned a function twice"
    present = {f["FunctionName"]: f for f in listed}

    unknown = set(present) - set(ledger.fns)
    assert not unknown, f"functions nobody created: {sorted(unknown)[:5]}"

    problems = []
    for name, f in ledger.fns.items():
        got = present.get(name)
        op, value = f.pending or (None, None)
        if got is None:
            if f.exists and op != "delete":
                problems.append(f"{name}: acknowledged function lost (history {f.history})")
            continue
        if not f.exists and op != "create":
            problems.append(f"{name}: acknowledged delete undone (history {f.history})")
            continue
        allowed_sha = {f.sha} if f.exists else set()
        if op in ("create", "code"):
            allowed_sha.add(value)
        if got["CodeSha256"] not in allowed_sha:
            problems.append(f"{name}: CodeSha256 {got['CodeSha256']} not in acknowledged/in-flight {allowed_sha}")
        allowed_desc = {f.description} | ({value} if op == "config" else set())
        if got.get("Description", "") not in allowed_desc:
            problems.append(f"{name}: Description {got.get('Description')!r} not in {allowed_desc}")
    assert not problems, "\n".join(problems[:20])

    # Every listed function is whole: readable, settled, and its package matches its hash.
    for name, item in present.items():
        cfg = wait_active(client, name)
        cfg = wait_updated(client, name)
        full = client.get_function(FunctionName=name)
        assert full["Configuration"]["CodeSha256"] == item["CodeSha256"] == cfg["CodeSha256"]
        r = requests.get(full["Code"]["Location"], timeout=30)
        assert r.status_code == 200, f"{name}: Code.Location answered {r.status_code}"
        digest = base64.b64encode(hashlib.sha256(r.content).digest()).decode()
        assert digest == item["CodeSha256"], f"{name}: downloaded package does not match CodeSha256"
        assert len(r.content) == item["CodeSize"], f"{name}: CodeSize {item['CodeSize']} != {len(r.content)}"

    usage = client.get_account_settings()["AccountUsage"]
    assert usage["FunctionCount"] == len(present)
    assert usage["TotalCodeSize"] == sum(f["CodeSize"] for f in present.values())

    # Settle the ledger to what is now durable, so the next round starts from known state.
    for name, f in ledger.fns.items():
        got = present.get(name)
        f.pending = None
        f.exists = got is not None
        if got is not None:
            f.sha = got["CodeSha256"]
            f.description = got.get("Description", "")


def test_sigkill_during_writes_loses_nothing_acknowledged(server_factory):
    srv = server_factory()
    srv.start()
    ledger = Ledger()
    rng = random.Random()
    total_acks = 0
    for round_no in range(ROUNDS):
        stop = threading.Event()
        errors: list[str] = []
        acks_before = ledger.acks
        threads = [
            threading.Thread(target=worker, args=(srv, ledger, stop, round_no * WORKERS + i, errors), daemon=True)
            for i in range(WORKERS)
        ]
        for t in threads:
            t.start()
        poll_until(lambda: ledger.acks - acks_before >= 5 or not any(t.is_alive() for t in threads), timeout=30, what="first writes")
        assert ledger.acks - acks_before >= 5, f"writers stopped early:\n{srv.log_tail()}"
        time.sleep(rng.uniform(0.05, 1.0))  # the random moment of the crash
        srv.kill9()
        stop.set()
        for t in threads:
            t.join(30)
            assert not t.is_alive()
        assert not errors, "\n".join(errors[:10])
        total_acks += ledger.acks - acks_before
        in_doubt = sum(1 for f in ledger.fns.values() if f.pending)
        print(f"round {round_no}: {ledger.acks - acks_before} acknowledged writes, {in_doubt} in doubt at SIGKILL")

        srv.start()
        verify(srv, ledger)

    assert total_acks >= ROUNDS * 5

    # After three crashes the server still takes writes.
    client = srv.client()
    z = python_zip()
    client.create_function(**create_kwargs("after-crashes", z))
    wait_active(client, "after-crashes")
    z2 = python_zip()
    assert client.update_function_code(FunctionName="after-crashes", ZipFile=z2)["CodeSha256"] == sha256_b64(z2)
    srv.restart()
    assert srv.client().get_function_configuration(FunctionName="after-crashes")["CodeSha256"] == sha256_b64(z2)
