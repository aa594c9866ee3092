"""Python zygotes (`--python-zygote`, on by default): the runtime of a Python sandbox built
ahead is a copy (fork) of an interpreter the platform initialised once, not a new
interpreter (docs/sandbox.md). These tests check that such runtimes really are copies (the
launcher's extension module, loaded from a memfd, is mapped, which an executed `python3.11`
does not have), that each copy is as confined and as separate from the others as any
sandbox, and that a zygote that dies is replaced without failing an invocation."""

from __future__ import annotations

import base64
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

from alonzo_helpers import create_function, invoke_ok, make_zip, poll_until, unique_name, wait_updated

# What only a copy of the zygote has in its address space: the launcher's extension module.
FORKED_MARK = "/memfd:_alonzo_launcher"

PROBE = r'''
import os, random, sys, time, uuid
FORKED_MARK = "/memfd:_alonzo_launcher"

def handler(event, context):
    marker = "/tmp/marker-" + uuid.uuid4().hex
    open(marker, "w").close()
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    time.sleep(event.get("sleep", 0))
    return {
        "forked": FORKED_MARK in open("/proc/self/maps").read(),
        "comm": open("/proc/self/comm").read().strip(),
        "exe": os.readlink("/proc/self/exe"),
        "environ_keys": sorted(e.split(b"=", 1)[0].decode()
                               for e in open("/proc/self/environ", "rb").read().split(b"\0") if e),
        "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
        "executable": sys.executable,
        "argv": sys.argv,
        "cmdline": open("/proc/self/cmdline", "rb").read().decode(),
        "launcher_visible": "_alonzo_launcher" in sys.modules or "_alonzo_launcher" in sys.builtin_module_names,
        "ids": [os.getuid(), os.getgid()],
        "cap_eff": status["CapEff"].strip(),
        "no_new_privs": status["NoNewPrivs"].strip(),
        "seccomp": status["Seccomp"].strip(),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "tmp": sorted(os.listdir("/tmp")),
        "marker": os.path.basename(marker),
        "random": random.random(),
        "urandom": os.urandom(16).hex(),
        "cwd": os.getcwd(),
        "my_var": os.environ.get("MY_VAR"),
    }
'''


def new_probe(client, **overrides) -> str:
    name = unique_name("zyg")
    overrides.setdefault("Timeout", 30)
    create_function(client, name, make_zip([("app.py", PROBE)]), **overrides)
    return name


def new_environments(client, name: str, count: int) -> list[dict]:
    """Forces `count` cold starts at once: a new revision, then `count` overlapping calls."""
    client.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"MY_VAR": "x", "REV": unique_name("r")}})
    wait_updated(client, name)
    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(lambda _: invoke_ok(client, name, {"sleep": 1.5})[1], range(count)))
    return results


def forked_environments(client, name: str, count: int, attempts: int = 6) -> list[dict]:
    """New environments until `count` of one round are copies of the zygote: the first cold
    starts may find only sandboxes built for any runtime (the pool learns which kinds are in
    demand)."""
    for _ in range(attempts):
        got = new_environments(client, name, count)
        if all(g["forked"] for g in got):
            return got
        time.sleep(0.5)
    raise AssertionError(f"no round of {count} environments was all forked from the zygote: {got}")


def launcher_pids(server_pid: int) -> list[int]:
    """The server's zygotes: its children in its own cgroup (the jail processes it also has
    as children are in their sandboxes' cgroups) showing a Python command line."""
    with open(f"/proc/{server_pid}/cgroup") as f:
        server_cgroup = f.read()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cgroup") as f:
                cgroup = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if ppid == server_pid and cgroup == server_cgroup and argv[0].startswith(b"/usr/bin/python3"):
            found.append(int(entry))
    return found


def test_python_runtimes_are_forked_from_the_zygote_and_each_is_a_confined_sandbox(server_factory):
    srv = server_factory()
    srv.start()
    client = srv.client()
    name = new_probe(client)
    got = forked_environments(client, name, 3)
    for env in got:
        # What the function sees of its interpreter is what an executed one shows.
        assert env["comm"] == "python3.11" and env["executable"] == "/usr/bin/python3.11", env
        assert env["exe"] == "/usr/bin/python3.11", env
        assert not [k for k in env["environ_keys"] if "ZYGOTE" in k or "ALONZO" in k], env
        # No descriptor of the launcher's (its socket, the namespace, the memfd) is left:
        # stdio, the Runtime API connection, and the one os.listdir above holds.
        assert env["fds"] == [0, 1, 2, 3, 4], env
        assert env["argv"] == ["/var/runtime/bootstrap.py"], env
        assert env["cmdline"] == "/usr/bin/python3.11\0-S\0/var/runtime/bootstrap.py\0", env
        assert not env["launcher_visible"], env
        assert env["cwd"] == "/var/task" and env["my_var"] == "x", env
        # As confined as an executed runtime: its own user, no capabilities, no way to gain
        # any, the seccomp filter, its own PID namespace (init and itself only).
        assert env["ids"] == [993, 990], env
        assert env["cap_eff"] == "0000000000000000", env
        assert env["no_new_privs"] == "1" and env["seccomp"] == "2", env
        assert env["pid"] == 2 and env["ppid"] == 1, env
        assert env["procs"] == [1, 2], env
        # Its own /tmp: only the file it wrote itself.
        assert env["tmp"] == [env["marker"]], env
    # Copies of one interpreter still draw their own random numbers.
    assert len({env["random"] for env in got}) == 3, got
    assert len({env["urandom"] for env in got}) == 3, got


def test_with_the_zygote_off_every_runtime_is_a_new_interpreter(server_factory):
    srv = server_factory(extra_env={"ALONZO_PYTHON_ZYGOTE": "off"})
    srv.start()
    client = srv.client()
    name = new_probe(client)
    for _ in range(3):
        for env in new_environments(client, name, 2):
            assert not env["forked"], env
            assert env["ids"] == [993, 990] and env["seccomp"] == "2", env
    assert launcher_pids(srv.proc.pid) == []


def test_a_zygote_that_dies_is_replaced_without_failing_an_invocation(server_factory):
    srv = server_factory(extra_env={"ALONZO_PYTHON_ZYGOTE": "on"})
    srv.start()
    client = srv.client()
    name = new_probe(client)
    forked_environments(client, name, 2)
    [launcher] = poll_until(lambda: launcher_pids(srv.proc.pid), what="the server's zygote")
    os.kill(launcher, signal.SIGKILL)
    poll_until(lambda: launcher not in launcher_pids(srv.proc.pid), what="the zygote gone")
    # Cold starts go on (built ahead before, or with the interpreter started), and the next
    # sandboxes are forked from a new zygote.
    got = forked_environments(client, name, 2)
    assert all(env["ids"] == [993, 990] for env in got), got
    assert launcher_pids(srv.proc.pid) not in ([], [launcher])


def test_a_forked_runtime_that_exits_is_reported_as_any_runtime_exit(server_factory):
    srv = server_factory(extra_env={"ALONZO_PYTHON_ZYGOTE": "on"})
    srv.start()
    client = srv.client()
    name = unique_name("zygexit")
    code = (
        "import os, sys\n"
        "def handler(event, context):\n"
        "    print('forked=%s' % ('/memfd:_alonzo_launcher' in open('/proc/self/maps').read()), flush=True)\n"
        "    os._exit(3)\n"
    )
    create_function(client, name, make_zip([("app.py", code)]), Timeout=10)
    # Every call ends its environment; the next cold starts are forked once the pool has
    # learnt the kind.
    for _ in range(8):
        resp = client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
        body = resp["Payload"].read().decode()
        log = base64.b64decode(resp["LogResult"]).decode()
        assert resp.get("FunctionError") == "Unhandled", body
        assert "Runtime.ExitError" in body and "exit status 3" in body, body
        if "forked=True" in log:
            return
        time.sleep(0.3)
    raise AssertionError("no call ran in a runtime forked from the zygote")


MEMORY_PROBE = r'''
import re

def handler(event, context):
    """Searches this process's own heap and stack for the given strings (hex-encoded in the
    event, so the event itself never holds them; their decoded copies are small objects,
    which live in the interpreter's own arenas, not on the heap or the stack)."""
    needles = [bytes.fromhex(h) for h in event["needles"]]
    found, scanned = [], 0
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", buffering=0) as mem:
        regions = [line.split() for line in maps.read().splitlines()]
        for fields in regions:
            if len(fields) < 6 or fields[5] not in ("[heap]", "[stack]") or "r" not in fields[1]:
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            mem.seek(start)
            data = mem.read(end - start)
            scanned += len(data)
            for needle in needles:
                if needle in data:
                    at = data.index(needle)
                    found.append((fields[5], needle.decode(errors="replace"),
                                  data[max(0, at - 40):at + len(needle) + 40].decode(errors="replace")))
    return {"found": found, "scanned": scanned,
            "forked": "/memfd:_alonzo_launcher" in open("/proc/self/maps").read()}
'''


def test_a_forked_runtime_finds_no_host_path_in_its_memory(server_factory):
    """A forked runtime never went through an execve, so the jail stages' memory is its own:
    the spec's host paths (the data directory, the server's sandbox directories and cgroups)
    must have been overwritten before it runs."""
    srv = server_factory(extra_env={"ALONZO_PYTHON_ZYGOTE": "on"})
    srv.start()
    client = srv.client()
    name = unique_name("zygmem")
    create_function(client, name, make_zip([("app.py", MEMORY_PROBE)]), Timeout=30, MemorySize=512)
    # Fragments, not whole paths: the allocator reuses the first bytes of a freed buffer, so
    # a path left behind is often found only from its middle on.
    needles = [str(srv.data_dir)[-16:], "cgroup.procs", "/runtime/python"]
    event = {"needles": [n.encode().hex() for n in needles]}
    for attempt in range(8):
        _, got = invoke_ok(client, name, event)
        if got["forked"]:
            break
        client.update_function_configuration(
            FunctionName=name, Environment={"Variables": {"N": str(attempt)}})
        wait_updated(client, name)
        time.sleep(0.3)
    else:
        raise AssertionError("no call ran in a runtime forked from the zygote")
    assert got["scanned"] > 1 << 20, got
    assert got["found"] == [], got["found"]


def test_a_forked_runtime_is_indistinguishable_from_a_fresh_one(server_factory):
    """`test_invoke.py`'s comparison of a runtime started ahead with one started for its
    function, on a server whose runtimes started ahead are copies of its zygote (the default)."""
    from test_invoke import test_prestarted_runtime_is_indistinguishable_from_a_fresh_one as compare

    srv = server_factory()
    srv.start()
    compare(srv.client(), "python3.11")
    assert launcher_pids(srv.proc.pid), "the comparison ran without a zygote"
