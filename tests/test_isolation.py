"""Sandbox isolation: what a function can see and do, probed from inside.

A python3.11 "probe" function tries one thing per invocation (`{"probe": ...}`) and
reports what happened; the tests assert that every escape attempt failed and that the
platform stays healthy afterwards (a normal invocation of a canary function still works).
"""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from alonzo_helpers import TEST_SECRET, create_function, make_zip, unique_name

PROBE = r'''
import errno
import json
import os
import socket
import stat
import sys
import time


def _err(e):
    return errno.errorcode.get(getattr(e, "errno", None) or 0, type(e).__name__)


def _read(path, limit=4096):
    try:
        with open(path, "rb") as f:
            return {"ok": f.read(limit).decode("utf-8", "replace")}
    except OSError as e:
        return {"err": _err(e)}


def _listdir(path):
    try:
        return {"ok": sorted(os.listdir(path))}
    except OSError as e:
        return {"err": _err(e)}


def probe_identity(event):
    import pwd
    return {
        "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "pid": os.getpid(),
        "ppid": os.getppid(), "groups": os.getgroups(),
    }


def probe_setuid(event):
    out = {}
    for name, fn in (("setuid0", lambda: os.setuid(0)), ("setgid0", lambda: os.setgid(0))):
        try:
            fn()
            out[name] = "ok"
        except OSError as e:
            out[name] = _err(e)
    out["uid_after"] = os.getuid()
    return out


def probe_processes(event):
    procs = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        info = {"cmdline": _read("/proc/%s/cmdline" % entry), "environ": _read("/proc/%s/environ" % entry, 65536),
                "root": _listdir("/proc/%s/root" % entry), "status": _read("/proc/%s/status" % entry)}
        procs[entry] = info
    return {"self": os.getpid(), "procs": procs}


def probe_paths(event):
    out = {}
    for p in event["paths"]:
        out[p] = {"exists": os.path.exists(p), "list": _listdir(p), "read": _read(p) if os.path.isfile(p) else None}
    return out


def probe_walk(event):
    target = event["name"]
    skip = set(event["skip"])
    found, seen = [], 0
    for root, dirs, files in os.walk("/", onerror=lambda e: None):
        if root in skip:
            dirs[:] = []
            continue
        seen += len(dirs) + len(files)
        for f in files + dirs:
            if target in f:
                found.append(os.path.join(root, f))
        if seen > event.get("limit", 200000):
            return {"found": found, "seen": seen, "complete": False}
    return {"found": found, "seen": seen, "complete": True}


def probe_write(event):
    out = {}
    for p in event["paths"]:
        try:
            with open(p, "w") as f:
                f.write("escape")
            out[p] = "ok"
        except OSError as e:
            out[p] = _err(e)
    try:
        os.mkdir("/var/task/newdir")
        out["mkdir /var/task/newdir"] = "ok"
    except OSError as e:
        out["mkdir /var/task/newdir"] = _err(e)
    return out


def probe_tmp(event):
    path = "/tmp/" + event["name"]
    with open(path, "w") as f:
        f.write(event["content"])
    with open(path) as f:
        back = f.read()
    return {"back": back, "listing": sorted(os.listdir("/tmp")), "mode": oct(os.stat("/tmp").st_mode)}


def probe_fill_tmp(event):
    chunk = b"\0" * (1 << 20)
    written = 0
    try:
        with open("/tmp/fill.bin", "wb") as f:
            for _ in range(event["mb"]):
                f.write(chunk)
                f.flush()
                written += 1
            os.fsync(f.fileno())
        result = "ok"
    except OSError as e:
        result = _err(e)
    finally:
        try:
            os.unlink("/tmp/fill.bin")
        except OSError:
            pass
    return {"written_mb": written, "result": result}


def probe_fork(event):
    r, w = os.pipe()
    children, failure = [], None
    try:
        for _ in range(event["n"]):
            try:
                pid = os.fork()
            except OSError as e:
                failure = _err(e)
                break
            if pid == 0:
                os.close(w)
                try:
                    os.read(r, 1)  # parked until the parent closes the pipe
                finally:
                    os._exit(0)
            children.append(pid)
    finally:
        os.close(w)
        os.close(r)
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass
    return {"forked": len(children), "failure": failure}


def probe_connect(event):
    out = {}
    for host, port in event["targets"]:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect((host, port))
            out["%s:%d" % (host, port)] = "connected"
        except OSError as e:
            out["%s:%d" % (host, port)] = _err(e) if not isinstance(e, socket.timeout) else "timeout"
        finally:
            s.close()
    out["interfaces"] = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
    return out


def probe_steal_next(event):
    """GET /next on the Runtime API while our own invocation is in flight."""
    s = socket.create_connection(("127.0.0.1", 9001), timeout=5)
    s.settimeout(event.get("wait", 3))
    s.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n\r\n")
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v.strip())
                if len(body) >= length:
                    break
    except socket.timeout:
        pass
    finally:
        s.close()
    return {"response": data.decode("utf-8", "replace")}


def probe_fds(event):
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[fd] = os.readlink("/proc/self/fd/" + fd)
        except OSError as e:
            out[fd] = _err(e)
    return out


def probe_env(event):
    return {"env": dict(os.environ)}


def handler(event, context):
    fn = globals()["probe_" + event["probe"]]
    return fn(event)
'''

CANARY = "def handler(event, context):\n    return {'canary': event}\n"


@pytest.fixture(scope="module")
def canary(lambda_client):
    name = unique_name("canary")
    create_function(lambda_client, name, make_zip([("app.py", CANARY)]), Timeout=10)
    return name


@pytest.fixture(scope="module")
def victim(lambda_client):
    """A second function whose code and /tmp must stay invisible to the probe."""
    marker = f"victim-marker-{uuid.uuid4().hex}"
    secret = f"victim-secret-{uuid.uuid4().hex}"
    code = (
        "import os, time\n"
        "def handler(event, context):\n"
        f"    open('/tmp/{marker}.tmp', 'w').write('{secret}')\n"
        "    time.sleep(event.get('sleep', 0))\n"
        "    return {'victim': event.get('token')}\n"
    )
    name = unique_name("victim")
    create_function(lambda_client, name, make_zip([("app.py", code), (f"{marker}.txt", secret)]), Timeout=15)
    resp = lambda_client.invoke(FunctionName=name, Payload=b'{"token": "warm"}')
    assert "FunctionError" not in resp, resp["Payload"].read()
    return {"name": name, "marker": marker, "secret": secret}


@pytest.fixture(scope="module")
def prober(lambda_client):
    name = unique_name("probe")
    create_function(lambda_client, name, make_zip([("app.py", PROBE)]), Timeout=60, MemorySize=1024,
                    EphemeralStorage={"Size": 512})
    return name


def run_probe(client, fn, probe, **event):
    resp = client.invoke(FunctionName=fn, Payload=json.dumps({"probe": probe, **event}).encode())
    body = resp["Payload"].read()
    assert resp["StatusCode"] == 200, resp
    assert "FunctionError" not in resp, f"probe {probe} failed: {body[:3000]!r}"
    return json.loads(body)


@pytest.fixture
def healthy(lambda_client, server, canary):
    """After the test: the server answers and a normal invocation still works."""
    yield
    assert server.running, "the server died"
    assert requests.get(f"{server.endpoint}/_alonzo/health", timeout=5).status_code == 200
    token = uuid.uuid4().hex
    resp = lambda_client.invoke(FunctionName=canary, Payload=json.dumps({"t": token}).encode())
    assert "FunctionError" not in resp
    assert json.loads(resp["Payload"].read()) == {"canary": {"t": token}}


DENIED = {"EROFS", "EACCES", "EPERM"}


# --------------------------------------------------------------------------------------


def test_runs_as_uid_993_and_cannot_become_root(lambda_client, prober, healthy):
    ident = run_probe(lambda_client, prober, "identity")
    assert ident["uid"] == 993 and ident["euid"] == 993, ident
    assert ident["pid"] < 100, f"pid {ident['pid']}: not in a fresh pid namespace?"
    out = run_probe(lambda_client, prober, "setuid")
    assert out["setuid0"] in DENIED and out["setgid0"] in DENIED, out
    assert out["uid_after"] == 993


def test_no_host_processes_visible(lambda_client, server, prober, healthy):
    out = run_probe(lambda_client, prober, "processes")
    pids = sorted(int(p) for p in out["procs"])
    assert str(out["self"]) in out["procs"]
    assert len(pids) <= 10, f"{len(pids)} processes visible: {pids}"
    assert max(pids) < 1000, pids
    assert server.proc.pid not in pids, f"the server's pid {server.proc.pid} is visible"
    for pid, info in out["procs"].items():
        cmd = info["cmdline"].get("ok", "").replace("\0", " ")
        assert "serve" not in cmd.split() and "--data-dir" not in cmd, f"pid {pid} looks like the server: {cmd!r}"
        assert str(server.data_dir) not in cmd, f"pid {pid} cmdline names the data dir: {cmd!r}"
        environ = info["environ"].get("ok", "")
        assert TEST_SECRET not in environ, f"pid {pid} environment holds the server's secret key"
        assert "ALONZO_" not in environ, f"pid {pid} environment holds server variables: {environ[:300]!r}"
        assert str(server.data_dir) not in json.dumps(info["root"]), f"/proc/{pid}/root shows the data dir"


def test_server_secrets_not_in_environment(lambda_client, prober, healthy):
    env = run_probe(lambda_client, prober, "env")["env"]
    assert not [k for k in env if k.startswith("ALONZO_")], sorted(env)
    assert TEST_SECRET not in json.dumps(env)
    for k in ("AWS_ENDPOINT_URL", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        assert k not in env, f"{k} leaked from the server's environment"


def test_other_functions_code_invisible(lambda_client, server, prober, victim, healthy):
    data = str(server.data_dir)
    paths = [data, data + "/code", data + "/logs", str(server.root), "/var/task", "/opt", "/var/runtime", "/proc/1/root/var/task"]
    out = run_probe(lambda_client, prober, "paths", paths=paths)
    for p in (data, data + "/code", data + "/logs", str(server.root)):
        assert not out[p]["exists"] and "ok" not in out[p]["list"], f"{p} is visible in the sandbox: {out[p]}"
    task = out["/var/task"]["list"].get("ok")
    assert task == ["app.py"], f"/var/task should hold only the probe's own code: {out['/var/task']}"
    assert out["/opt"]["list"].get("ok") == [], out["/opt"]
    assert victim["marker"] + ".txt" not in json.dumps(out)

    # Everything but the kernel's file systems and the host's read-only system directories.
    skip = ["/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/bin", "/sbin"]
    walk = run_probe(lambda_client, prober, "walk", name=victim["marker"], skip=skip)
    assert walk["complete"] and walk["seen"] > 5, walk
    assert walk["found"] == [], f"the other function's files are reachable: {walk['found']}"


def test_proc_environ_and_root_of_others_not_readable(lambda_client, prober, victim, healthy):
    out = run_probe(lambda_client, prober, "processes")
    blob = json.dumps(out)
    assert victim["secret"] not in blob and victim["marker"] not in blob


def test_tmp_is_private_and_writable(lambda_client, prober, victim, healthy):
    lambda_client.invoke(FunctionName=victim["name"], Payload=b'{"token": "tmp"}')["Payload"].read()
    name = f"probe-{uuid.uuid4().hex}"
    out = run_probe(lambda_client, prober, "tmp", name=name, content="private")
    assert out["back"] == "private"
    assert name in out["listing"]
    assert not any(victim["marker"] in f for f in out["listing"]), f"another function's /tmp is visible: {out['listing']}"
    # /tmp persists across invocations of the same (warm) environment.
    again = run_probe(lambda_client, prober, "paths", paths=["/tmp/" + name])
    assert (again["/tmp/" + name]["read"] or {}).get("ok") == "private", again


def test_tmp_is_limited_to_ephemeral_storage(lambda_client, prober, healthy):
    out = run_probe(lambda_client, prober, "fill_tmp", mb=700)
    assert out["result"] == "ENOSPC", out
    assert 400 <= out["written_mb"] <= 520, f"/tmp of EphemeralStorage 512 MB took {out['written_mb']} MB"


def test_cannot_write_outside_tmp(lambda_client, prober, healthy):
    paths = ["/var/task/x", "/var/task/app.py", "/etc/x", "/etc/passwd", "/x", "/opt/x", "/var/runtime/x", "/usr/x", "/bin/x"]
    out = run_probe(lambda_client, prober, "write", paths=paths)
    for p in paths + ["mkdir /var/task/newdir"]:
        assert out[p] in DENIED, f"write to {p}: {out[p]}"
    # The code is intact afterwards.
    assert run_probe(lambda_client, prober, "identity")["uid"] == 993


def test_sensitive_host_files_absent(lambda_client, prober, healthy):
    out = run_probe(lambda_client, prober, "paths", paths=["/etc/shadow", "/sys", "/root", "/etc/passwd"])
    shadow = out["/etc/shadow"]
    assert not shadow["exists"] or "err" in (shadow["read"] or {"err": "not a file"}), f"/etc/shadow readable: {shadow}"
    assert not out["/sys"]["exists"] or out["/sys"]["list"].get("ok", []) == [], f"/sys is populated: {out['/sys']}"
    assert out["/root"]["list"].get("ok", []) == [], f"/root is listable: {out['/root']}"
    passwd = (out["/etc/passwd"]["read"] or {}).get("ok", "")
    with open("/etc/passwd") as fh:
        host_users = {line.split(":")[0] for line in fh if line.strip()} - {"root", "nobody"}
    sandbox_users = {line.split(":")[0] for line in passwd.splitlines() if line.strip()}
    assert not host_users & sandbox_users, f"the host's /etc/passwd is visible in the sandbox: {sorted(host_users & sandbox_users)}"


def test_dev_is_minimal(lambda_client, prober, healthy):
    out = run_probe(lambda_client, prober, "paths", paths=["/dev"])
    listing = set(out["/dev"]["list"].get("ok", []))
    allowed = {"null", "zero", "full", "random", "urandom", "shm", "fd", "stdin", "stdout", "stderr", "pts", "ptmx", "tty"}
    assert {"null", "zero", "urandom"} <= listing, listing
    assert listing <= allowed, f"unexpected devices in the sandbox: {sorted(listing - allowed)}"


def test_no_inherited_descriptors(lambda_client, server, prober, healthy):
    fds = run_probe(lambda_client, prober, "fds")
    assert len(fds) <= 12, f"{len(fds)} open descriptors: {fds}"
    for fd, target in fds.items():
        assert str(server.root) not in target and "/data" not in target, f"fd {fd} -> {target}"
        assert not target.endswith((".db", ".db-wal", "credentials", ".lock")), f"fd {fd} -> {target}"
    assert fds.get("0") == "/dev/null", f"stdin is {fds.get('0')}"


def test_pids_limit(lambda_client, server, prober, healthy):
    out = run_probe(lambda_client, prober, "fork", n=2000)
    assert out["failure"] == "EAGAIN", out
    assert 100 <= out["forked"] < 1100, out
    # The function itself is still usable after its children are gone.
    assert run_probe(lambda_client, prober, "identity")["uid"] == 993


def test_network_is_private(lambda_client, server, prober, healthy):
    out = run_probe(lambda_client, prober, "connect", targets=[["127.0.0.1", server.port], ["127.0.0.1", 9001]])
    assert out[f"127.0.0.1:{server.port}"] in {"ECONNREFUSED", "ENETUNREACH", "timeout", "EHOSTUNREACH"}, out
    assert out["127.0.0.1:9001"] == "connected", f"the sandbox cannot reach its own Runtime API: {out}"
    # The default network is `outbound`: loopback and the sandbox's own veth end (what it can
    # reach through it is tested in test_network.py).
    assert sorted(out["interfaces"]) == ["eth0", "lo"], f"interfaces in the sandbox: {out['interfaces']}"


def test_cannot_steal_another_sandboxs_event(lambda_client, server, victim, healthy):
    """While the victim waits for events, the probe asks its own Runtime API for /next: it
    must not receive the victim's event, and the victim's invocation completes normally."""
    import threading

    prober = unique_name("probe-next")
    create_function(lambda_client, prober, make_zip([("app.py", PROBE)]), Timeout=30)
    token = f"token-{uuid.uuid4().hex}"
    stolen: dict = {}

    def steal():
        stolen.update(run_probe(server.client(), prober, "steal_next", wait=4))

    t = threading.Thread(target=steal)
    t.start()
    resp = lambda_client.invoke(FunctionName=victim["name"], Payload=json.dumps({"token": token}).encode())
    body = json.loads(resp["Payload"].read())
    t.join(30)
    assert "FunctionError" not in resp and body == {"victim": token}, body
    assert token not in stolen.get("response", ""), "the probe received another function's event"
    status_line = stolen.get("response", "").split("\r\n", 1)[0]
    assert " 200 " not in status_line, f"/next answered 200 during an invocation in flight: {stolen}"
    # Lambda's Runtime API answers a second /next before the current event is answered
    # with 403 InvalidStateTransition.
    assert " 403 " in status_line and "InvalidStateTransition" in stolen.get("response", ""), stolen
    # The probe function itself still serves events afterwards (no event lost to the dangling /next).
    assert run_probe(lambda_client, prober, "identity")["uid"] == 993
    assert run_probe(lambda_client, prober, "identity")["uid"] == 993
