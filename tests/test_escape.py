"""Escape and abuse: a function attacks the platform from inside its sandbox, and loses.

One python3.11 "attacker" runs a table of attempts per invocation (raw system calls through
ctypes, files, sockets, signals) and reports each outcome as an errno name; the tests compare
each with the expected refusal. Every test also checks that the platform stays healthy: the
health endpoint answers and a canary function still returns the right answer.

Resource isolation (CPU share proportional to memory, a noisy neighbour that does not slow
another function, rlimits, memory/fds/pids/disk exhaustion) is here too; the seccomp policy
is `crates/alonzo-jail/seccomp/x86_64.json`, described in `docs/sandbox.md`.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import threading
import time
import uuid
import zipfile

import pytest
import requests

from alonzo_helpers import create_function, make_zip, unique_name

ATTACKER = r'''
import ctypes, errno, mmap, os, resource, signal, socket, struct, time

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def name(e):
    return errno.errorcode.get(e, str(e))


def sys(nr, *args):
    """A raw system call; "ok" or the errno name. A call that unexpectedly succeeds in
    creating a process returns in the child too: the child leaves at once."""
    args = [ctypes.c_void_p(a) if isinstance(a, int) else a for a in args]
    pid = os.getpid()
    r = libc.syscall(ctypes.c_long(nr), *args)
    if os.getpid() != pid:
        os._exit(0)
    return "ok" if r >= 0 else name(ctypes.get_errno())


def fs(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return name(e.errno)


def buf(n=256):
    return ctypes.create_string_buffer(n)


def write(path, data="x"):
    return fs(lambda: open(path, "w").write(data))


def read(path):
    return fs(lambda: open(path, "rb").read(64))


def connect(host, port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        return "connected"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return name(e.errno)
    finally:
        s.close()


def int80_getpid():
    """An i386 system call (int 0x80) from machine code, in a child; the child's fate."""
    pid = os.fork()
    if pid == 0:
        m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        m.write(bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3]))  # mov eax, 20; int 0x80; ret
        fn = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
        os._exit(0 if fn() > 0 else 1)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "signal " + signal.Signals(os.WTERMSIG(status)).name
    return "exit %d" % os.WEXITSTATUS(status)


def kill_everyone():
    """SIGKILL to every pid but our own threads (signal 0 to our parent): outside processes
    must be invisible (ESRCH)."""
    mine, seen = {int(t) for t in os.listdir("/proc/self/task")} | {os.getpid()}, {}
    for pid in range(1, 4096):
        if pid not in mine:
            try:
                os.kill(pid, signal.SIGKILL if pid != os.getppid() else 0)
                seen[pid] = "ok"
            except OSError as e:
                seen[pid] = name(e.errno)
    return {str(p): r for p, r in seen.items() if r != "ESRCH"}


def attempts(event):
    data = event["data_dir"]
    ro = os.open("/dev/null", os.O_RDONLY)
    ns = os.open("/proc/self/ns/net", os.O_RDONLY)
    table = {
        # Host files and the platform's own.
        "read /etc/shadow": lambda: read("/etc/shadow"),
        "read /proc/1/root/etc/shadow": lambda: read("/proc/1/root/etc/shadow"),
        "list /proc/1/root": lambda: fs(lambda: os.listdir("/proc/1/root")),
        "list the data dir": lambda: fs(lambda: os.listdir(data)),
        "list the data dir via /proc/1/root": lambda: fs(lambda: os.listdir("/proc/1/root" + data)),
        "read /proc/kcore": lambda: read("/proc/kcore"),
        "write /proc/sysrq-trigger": lambda: write("/proc/sysrq-trigger", "h"),
        "write /proc/sys/kernel/hostname": lambda: write("/proc/sys/kernel/hostname", "pwned"),
        "write /proc/sys/vm/drop_caches": lambda: write("/proc/sys/vm/drop_caches", "3"),
        "write /proc/1/oom_score_adj": lambda: write("/proc/1/oom_score_adj", "1000"),
        # Cgroups.
        "join the root cgroup": lambda: write("/sys/fs/cgroup/cgroup.procs", str(os.getpid())),
        "mkdir in /sys/fs/cgroup": lambda: fs(lambda: os.mkdir("/sys/fs/cgroup/escape")),
        "mount cgroup2": lambda: sys(165, b"none", b"/tmp", b"cgroup2", 0, 0),
        # Mounts (the filesystem is final once the program runs).
        "mount tmpfs": lambda: sys(165, b"none", b"/tmp", b"tmpfs", 0, 0),
        "mount proc": lambda: sys(165, b"proc", b"/tmp", b"proc", 0, 0),
        "bind mount /": lambda: sys(165, b"/", b"/tmp", 0, 0x1000, 0),
        "umount2 /proc": lambda: sys(166, b"/proc", 2),
        "pivot_root": lambda: sys(155, b"/tmp", b"/tmp"),
        "chroot": lambda: sys(161, b"/tmp"),
        "fsopen tmpfs": lambda: sys(430, b"tmpfs", 0),
        "open_tree": lambda: sys(428, -100, b"/", 1),
        # Kernel code.
        "init_module": lambda: sys(175, 0, 0, b""),
        "finit_module": lambda: sys(313, ro, b"", 0),
        "delete_module": lambda: sys(176, b"ext4", 0),
        "kexec_load": lambda: sys(246, 0, 0, 0, 0),
        "reboot (CAD off)": lambda: sys(169, 0xFEE1DEAD, 672274793, 0, 0),
        # Kernel surfaces.
        "bpf map create": lambda: sys(321, 0, buf(), 128),
        "perf_event_open": lambda: sys(298, buf(), 0, -1, -1, 0),
        "userfaultfd": lambda: sys(323, 0),
        "io_uring_setup": lambda: sys(425, 1, buf()),
        "keyctl": lambda: sys(250, 0, -3, 0),
        "add_key": lambda: sys(248, b"user", b"x", b"y", 1, -2),
        "syslog read": lambda: sys(103, 3, buf(), 256),
        "open_by_handle_at": lambda: sys(304, ro, buf(), 0),
        "personality ADDR_NO_RANDOMIZE": lambda: sys(135, 0x0040000),
        "personality query": lambda: sys(135, 0xFFFFFFFF),
        "ioctl TIOCSTI": lambda: sys(16, ro, 0x5412, buf(1)),
        "settimeofday": lambda: sys(164, buf(), 0),
        "swapon": lambda: sys(167, b"/tmp/swap", 0),
        # Namespaces: a new user namespace would give back every capability inside it.
        "unshare user": lambda: sys(272, 0x10000000),
        "unshare mount": lambda: sys(272, 0x00020000),
        "unshare net": lambda: sys(272, 0x40000000),
        "setns": lambda: sys(308, ns, 0),
        "clone new user": lambda: sys(56, 0x10000000 | 17, 0, 0, 0, 0),
        "clone3": lambda: sys(435, buf(88), 88),
        # Other processes.
        "ptrace attach 1": lambda: sys(101, 16, 1, 0, 0),
        "ptrace traceme": lambda: sys(101, 0, 0, 0, 0),
        "process_vm_readv 1": lambda: sys(310, 1, buf(16), 1, buf(16), 1, 0),
        # Other ABIs.
        "x32 getpid": lambda: sys(0x40000000 + 39),
        "i386 getpid (int 0x80)": int80_getpid,
        # The network: the platform's port, its other loopback ports, other sandboxes.
        "connect to the API port": lambda: connect("127.0.0.1", event["api_port"]),
        "connect to the metrics port": lambda: connect("127.0.0.1", event["metrics_port"]),
        "connect to 127.0.0.2:9001": lambda: connect("127.0.0.2", 9001),
        # What must keep working.
        "fork and wait": fork_and_wait,
        "thread (clone3 falls back to clone)": lambda: "ok" if threading_works() else "failed",
        "own Runtime API": lambda: connect("127.0.0.1", 9001),
    }
    out = {}
    for k, fn in table.items():
        try:
            out[k] = fn()
        except Exception as e:  # an attempt must never take the attacker down
            out[k] = "exception %s: %s" % (type(e).__name__, e)
    out["kill every pid"] = kill_everyone()
    return out


def fork_and_wait():
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    return "ok" if os.WEXITSTATUS(os.waitpid(pid, 0)[1]) == 7 else "wrong status"


def threading_works():
    import threading
    box = []
    t = threading.Thread(target=lambda: box.append(1))
    t.start()
    t.join()
    return box == [1]


def limits(event):
    return {
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
        "nproc": resource.getrlimit(resource.RLIMIT_NPROC),
        "core": resource.getrlimit(resource.RLIMIT_CORE),
        "raise nofile": raise_nofile(),
        "seccomp": [l for l in open("/proc/self/status") if l.startswith("Seccomp")],
    }


def raise_nofile():
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
        return "ok"
    except ValueError:  # Python's word for EPERM here
        return "refused"


def exhaust_fds(event):
    fds, failure = [], None
    try:
        while len(fds) < 100000:
            fds.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as e:
        failure = name(e.errno)
    finally:
        for fd in fds:
            os.close(fd)
    return {"opened": len(fds), "failure": failure}


def exhaust_memory(event):
    hog = []
    while True:
        hog.append(b"x" * (16 << 20))  # every page written


def kill_all_minus_one(event):
    pid = os.fork()
    if pid == 0:
        os.kill(-1, signal.SIGKILL)
        os._exit(0)
    time.sleep(5)
    return {"survived": True}


def spin(event):
    """Burns CPU for `seconds` of wall time; the share of a core it got, and the pauses
    (over 2 ms) it saw between two turns of its loop, in ms."""
    end = time.monotonic() + event["seconds"]
    t0, w0 = os.times(), time.monotonic()
    last, pauses = w0, []
    while True:
        now = time.monotonic()
        if now - last > 0.002:
            pauses.append((now - last) * 1000)
        last = now
        if now >= end:
            break
        sum(range(200))
    t1, w1 = os.times(), time.monotonic()
    return {"share": ((t1.user - t0.user) + (t1.system - t0.system)) / (w1 - w0), "pauses": pauses}


def noise(event):
    """A fork bomb (`bomb`) or `n` CPU spinners, until the platform's timeout ends them all."""
    import subprocess, sys as system
    if event["kind"] == "bomb":
        subprocess.Popen(["/bin/sh", "-c", "b() { while :; do b & done; }; b"], stderr=subprocess.DEVNULL)
    else:
        for _ in range(event["n"]):
            subprocess.Popen([system.executable, "-S", "-c", "while True: pass"])
    time.sleep(3600)


def handler(event, context):
    return globals()[event["op"]](event)
'''

VICTIM = r'''
import time
def handler(event, context):
    t = time.perf_counter()
    sum(i * i for i in range(20000))  # ~1-2 ms of CPU: CPU contention shows in its latency
    return {"work_ms": (time.perf_counter() - t) * 1000}
'''

CANARY = "def handler(event, context):\n    return {'canary': event}\n"


def invoke(client, fn, event, **kw):
    resp = client.invoke(FunctionName=fn, Payload=json.dumps(event).encode(), **kw)
    body = resp["Payload"].read()
    return resp, body


def call(client, fn, event):
    resp, body = invoke(client, fn, event)
    assert "FunctionError" not in resp, f"{event.get('op')} failed: {body[:3000]!r}"
    return json.loads(body)


@pytest.fixture(scope="module")
def canary(lambda_client):
    name = unique_name("esc-canary")
    create_function(lambda_client, name, make_zip([("app.py", CANARY)]), Timeout=10)
    return name


@pytest.fixture(scope="module")
def attacker(lambda_client):
    name = unique_name("attacker")
    create_function(lambda_client, name, make_zip([("app.py", ATTACKER)]), Timeout=60, MemorySize=1024)
    return name


@pytest.fixture
def healthy(lambda_client, server, canary):
    """After the test: the server answers and a normal invocation still works."""
    yield
    assert server.running, "the server died"
    assert requests.get(f"{server.endpoint}/_alonzo/health", timeout=5).status_code == 200
    token = uuid.uuid4().hex
    resp, body = invoke(lambda_client, canary, {"t": token})
    assert "FunctionError" not in resp, body
    assert json.loads(body) == {"canary": {"t": token}}


@pytest.fixture(scope="module")
def outcomes(lambda_client, server, attacker):
    return call(lambda_client, attacker, {"op": "attempts", "data_dir": str(server.data_dir),
                                          "api_port": server.port, "metrics_port": server.metrics_port})


REFUSED = {"EPERM", "EACCES", "EROFS", "ENOENT"}
NOT_CONNECTED = {"ECONNREFUSED", "ENETUNREACH", "EHOSTUNREACH", "timeout"}

# attempt -> the outcomes that count as a refusal. Seccomp answers EPERM (ENOSYS for calls
# it reports as absent), so calls that would also fail for want of capabilities are listed
# with EPERM alone where the filter is what answers first.
EXPECTED: dict[str, set[str]] = {
    "read /etc/shadow": {"ENOENT"},
    "read /proc/1/root/etc/shadow": REFUSED,
    "list /proc/1/root": REFUSED,
    "list the data dir": {"ENOENT"},
    "list the data dir via /proc/1/root": REFUSED,
    "read /proc/kcore": REFUSED,
    "write /proc/sysrq-trigger": REFUSED,
    "write /proc/sys/kernel/hostname": REFUSED,
    "write /proc/sys/vm/drop_caches": REFUSED,
    "write /proc/1/oom_score_adj": REFUSED,
    "join the root cgroup": {"ENOENT"},
    "mkdir in /sys/fs/cgroup": {"ENOENT"},
    "mount cgroup2": {"EPERM"},
    "mount tmpfs": {"EPERM"},
    "mount proc": {"EPERM"},
    "bind mount /": {"EPERM"},
    "umount2 /proc": {"EPERM"},
    "pivot_root": {"EPERM"},
    "chroot": {"EPERM"},
    "fsopen tmpfs": {"EPERM"},
    "open_tree": {"EPERM"},
    "init_module": {"EPERM"},
    "finit_module": {"EPERM"},
    "delete_module": {"EPERM"},
    "kexec_load": {"EPERM"},
    "reboot (CAD off)": {"EPERM"},
    "bpf map create": {"EPERM"},
    "perf_event_open": {"EPERM"},
    "userfaultfd": {"EPERM"},
    "io_uring_setup": {"ENOSYS"},
    "keyctl": {"EPERM"},
    "add_key": {"EPERM"},
    "syslog read": {"EPERM"},
    "open_by_handle_at": {"EPERM"},
    "personality ADDR_NO_RANDOMIZE": {"EPERM"},
    "ioctl TIOCSTI": {"EPERM"},  # ENOTTY without the filter
    "settimeofday": {"EPERM"},
    "swapon": {"EPERM"},
    "unshare user": {"EPERM"},  # succeeds without the filter: user namespaces nest
    "unshare mount": {"EPERM"},
    "unshare net": {"EPERM"},
    "setns": {"EPERM"},
    "clone new user": {"EPERM"},
    "clone3": {"ENOSYS"},
    "ptrace attach 1": {"EPERM"},
    "ptrace traceme": {"EPERM"},
    "process_vm_readv 1": {"EPERM"},
    "x32 getpid": {"EPERM"},  # ENOSYS on this kernel without the filter (no x32 support)
    "i386 getpid (int 0x80)": {"signal SIGSYS"},  # the pid, without the filter
    "connect to the API port": NOT_CONNECTED,
    "connect to the metrics port": NOT_CONNECTED,
    "connect to 127.0.0.2:9001": NOT_CONNECTED,
    # Allowed, and needed by ordinary programs:
    "personality query": {"ok"},
    "fork and wait": {"ok"},
    "thread (clone3 falls back to clone)": {"ok"},
    "own Runtime API": {"connected"},
}


@pytest.mark.parametrize("attempt", sorted(EXPECTED))
def test_attempt_is_refused(outcomes, attempt):
    assert outcomes.get(attempt) in EXPECTED[attempt], f"{attempt}: {outcomes.get(attempt)!r}"


def test_every_attempt_is_checked(outcomes):
    assert set(outcomes) - {"kill every pid"} == set(EXPECTED)


def test_signals_reach_no_process_outside(outcomes, server, healthy):
    """SIGKILL to pids 1..4095: only the sandbox's own init (EPERM) and the runtime's own
    parent are visible; the server and everything else on the host are not (ESRCH)."""
    visible = outcomes["kill every pid"]
    assert visible.get("1") == "EPERM", visible
    assert set(visible) <= {"1", "2"}, f"processes visible from the sandbox: {visible}"
    assert server.running


def test_kill_minus_one_only_ends_the_sandbox(lambda_client, server, attacker, canary, healthy):
    """kill(-1, SIGKILL) from a function kills what it may signal: its own sandbox."""
    before = call(lambda_client, canary, {"warm": 1})
    resp, body = invoke(lambda_client, attacker, {"op": "kill_all_minus_one"})
    assert resp.get("FunctionError") == "Unhandled", body
    assert "Runtime" in json.loads(body).get("errorType", ""), body
    assert call(lambda_client, canary, {"warm": 2}) == {"canary": {"warm": 2}} and before


def test_rlimits_and_seccomp_status(lambda_client, attacker, healthy):
    out = call(lambda_client, attacker, {"op": "limits"})
    assert out["nofile"] == [1024, 1024] and out["nproc"] == [1024, 1024] and out["core"] == [0, 0], out
    assert out["raise nofile"] == "refused", out
    status = dict(line.strip().split(":\t") for line in out["seccomp"])
    assert status["Seccomp"] == "2" and int(status["Seccomp_filters"]) >= 3, out["seccomp"]


def test_file_descriptors_run_out_at_the_rlimit(lambda_client, attacker, healthy):
    out = call(lambda_client, attacker, {"op": "exhaust_fds"})
    assert out["failure"] == "EMFILE" and 1000 <= out["opened"] <= 1024, out


def test_memory_exhaustion_is_an_out_of_memory_error(lambda_client, healthy):
    name = unique_name("hog")
    create_function(lambda_client, name, make_zip([("app.py", ATTACKER)]), Timeout=30, MemorySize=128)
    resp, body = invoke(lambda_client, name, {"op": "exhaust_memory"})
    assert resp.get("FunctionError") == "Unhandled", body
    assert json.loads(body)["errorType"] == "Runtime.OutOfMemory", body


def test_tmp_fills_up_with_enospc_not_the_hosts_disk(lambda_client, healthy):
    # The probe of test_isolation.py, at the smallest EphemeralStorage; /tmp is a tmpfs whose
    # pages count against the function's memory, so the function has more memory than /tmp.
    from test_isolation import PROBE

    name = unique_name("filler")
    create_function(lambda_client, name, make_zip([("app.py", PROBE)]), Timeout=30, MemorySize=1024,
                    EphemeralStorage={"Size": 512})
    out = call(lambda_client, name, {"probe": "fill_tmp", "mb": 600})
    assert out["result"] == "ENOSPC" and 450 <= out["written_mb"] <= 512, out


def test_pids_run_out_at_the_limit(lambda_client, healthy):
    from test_isolation import PROBE

    name = unique_name("forker")
    create_function(lambda_client, name, make_zip([("app.py", PROBE)]), Timeout=30, MemorySize=1024)
    out = call(lambda_client, name, {"probe": "fork", "n": 1500})
    assert out["failure"] == "EAGAIN" and 900 <= out["forked"] < 1024, out


# --------------------------------------------------------------------------------------
# CPU


def test_cpu_share_is_proportional_to_memory(lambda_client, healthy):
    """Lambda's ratio: 1,769 MB is one vCPU, so 128 MB gets 7.2 % of a core and 512 MB 29 %
    once initialised (init itself runs with a whole core). The upper bounds are what the
    cgroup quota enforces (a whole core each without it); the lower bounds only say the
    function was not starved, loosely, as other work on a busy machine competes too."""
    names = {}
    for mb in (128, 512):
        names[mb] = unique_name(f"spin{mb}")
        create_function(lambda_client, names[mb], make_zip([("app.py", ATTACKER)]), Timeout=30, MemorySize=mb)
    shares, pauses = {}, {}

    def run(mb):
        out = call(lambda_client, names[mb], {"op": "spin", "seconds": 2})
        shares[mb], pauses[mb] = out["share"], sorted(out["pauses"])

    threads = [threading.Thread(target=run, args=(mb,)) for mb in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert 0.03 <= shares[128] <= 0.11, shares
    assert 0.08 <= shares[512] <= 0.36 and shares[512] > 1.5 * shares[128], shares
    # The quota is spent per 100 ms period: a CPU-bound 128 MB function runs its 7 ms (and
    # its burst) and is paused for the rest of the period, about 93 ms, never for more than
    # a period and a scheduler tick (docs/sandbox.md says why not Lambda's 20 ms).
    typical = statistics.median(pauses[128])
    print(f"128 MB: {len(pauses[128])} pauses, median {typical:.1f} ms, longest {pauses[128][-1]:.1f} ms")
    assert len(pauses[128]) >= 10 and 60 <= typical <= 100 and pauses[128][-1] < 130, pauses[128]


def _latencies(client, fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        resp, body = invoke(client, fn, {})
        out.append((time.perf_counter() - t) * 1000)
        assert "FunctionError" not in resp, body
    out.sort()
    return statistics.median(out), out[int(len(out) * 0.9)]


def test_noisy_neighbours_do_not_slow_a_third_function(lambda_client, server, healthy):
    """A fork bomb in one function and four CPU spinners in another run until their 15 s
    timeout; a third function's warm invocations (a millisecond or two of CPU each) are timed
    before and during the noise. The noise ends by the platform's timeout kill, which must
    work on a fork bomb too.

    The threshold: p50 may grow by 50 % plus 5 ms and p90 may double plus 10 ms. The noise
    is limited to 7.2 % of a core per 128 MB function (plus the kernel's fork work), so a
    correct platform stays well inside it even on a busy 2-core CI machine (measured: p50
    2.9 -> 3.0 ms, p90 5.1 -> 4.7 ms). Without the quota the bomb and the spinners take every
    core and the test fails clearly (measured with 3,538 MB noise functions, two cores each:
    p50 3.8 -> 9.3 ms, p90 9.8 -> 110 ms)."""
    victim = unique_name("victim")
    create_function(lambda_client, victim, make_zip([("app.py", VICTIM)]), Timeout=10, MemorySize=2048)
    noisy = {}
    for kind in ("bomb", "spinners"):
        noisy[kind] = unique_name(kind)
        create_function(lambda_client, noisy[kind], make_zip([("app.py", ATTACKER)]), Timeout=15, MemorySize=128)
    _latencies(lambda_client, victim, 20)  # warm up
    quiet = _latencies(lambda_client, victim, 150)

    ended: dict[str, bytes] = {}

    def make_noise(kind):
        resp, body = invoke(server.client(), noisy[kind], {"op": "noise", "kind": kind, "n": 4})
        ended[kind] = body

    threads = [threading.Thread(target=make_noise, args=(kind,)) for kind in noisy]
    for t in threads:
        t.start()
    time.sleep(3)  # cold starts, then the bomb reaches pids.max and the spinners spin
    loud = _latencies(lambda_client, victim, 150)
    for t in threads:
        t.join(40)
    for kind in noisy:
        assert b"timed out" in ended.get(kind, b""), f"{kind}: {ended.get(kind)!r}"
    # Quiet again once the noise is gone; the baseline is the slower of the two quiet runs,
    # so a busy CI machine's own drift is not blamed on the neighbours.
    after = _latencies(lambda_client, victim, 150)
    print(f"victim p50/p90 quiet {quiet[0]:.1f}/{quiet[1]:.1f} ms, noisy {loud[0]:.1f}/{loud[1]:.1f} ms, "
          f"quiet again {after[0]:.1f}/{after[1]:.1f} ms")
    quiet = (max(quiet[0], after[0]), max(quiet[1], after[1]))
    assert loud[0] <= quiet[0] * 1.5 + 5, f"p50 {quiet[0]:.1f} -> {loud[0]:.1f} ms"
    assert loud[1] <= quiet[1] * 2 + 10, f"p90 {quiet[1]:.1f} -> {loud[1]:.1f} ms"


# --------------------------------------------------------------------------------------
# Runtimes under the filter (Python, Node.js, the bash + curl and Rust custom runtimes are
# covered by their own suites, which all run with it).


JAVA_BOOTSTRAP = r'''#!/bin/sh
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  HEADERS=$(mktemp)
  curl -sS -LD "$HEADERS" "$API/invocation/next" >/dev/null
  ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  VERSION=$(java -Xshare:auto -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -version 2>&1 | head -1 | tr -d '"')
  curl -sS -X POST "$API/invocation/$ID/response" -d "{\"java\": \"$VERSION\"}" >/dev/null
done
'''


@pytest.mark.skipif(not shutil.which("java") or not shutil.which("curl"), reason="no java or curl on this host")
def test_java_runs_under_the_filter(lambda_client, healthy):
    info = zipfile.ZipInfo("bootstrap")
    info.external_attr = 0o100755 << 16
    info.create_system = 3
    name = unique_name("java")
    create_function(lambda_client, name, make_zip([(info, JAVA_BOOTSTRAP)]), Runtime="provided.al2023",
                    Handler="x", Timeout=30, MemorySize=1024)
    out = call(lambda_client, name, {})
    assert "version" in out["java"], out
