"""A fake Lambda Runtime API (2018-06-01) and a fixture that runs a bootstrap against it.

(Its own module name, not ``conftest``, so that ``from bootstrap_harness import ...``
stays unambiguous when pytest collects this folder together with other suites.)

The fake serves ``GET /runtime/invocation/next`` from a queue of events and records every
``/response``, ``/error`` and ``/init/error`` it receives.  Only loopback traffic.
"""

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

RUNTIMES = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON_BOOTSTRAP = os.path.join(RUNTIMES, "python", "bootstrap.py")
# The module the stub above imports: the runtime itself.
PYTHON_RUNTIME = os.path.join(RUNTIMES, "python", "alonzo_bootstrap.py")
NODE_BOOTSTRAP = os.path.join(RUNTIMES, "nodejs", "bootstrap.mjs")
PYTHON = os.environ.get("ALONZO_TEST_PYTHON") or shutil.which("python3") or sys.executable
NODE = os.environ.get("ALONZO_TEST_NODE") or shutil.which("node")

FUNCTION_NAME = "my-function"
REGION = "us-east-1"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:my-function"


class Posted(object):
    """One request the bootstrap sent: kind is response, error or init_error."""

    def __init__(self, kind, request_id, headers, body):
        self.kind = kind
        self.request_id = request_id
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "Posted(%s, %s, %r)" % (self.kind, self.request_id, self.body[:300])


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a bootstrap killed mid-request is expected


class FakeRuntimeApi(object):
    def __init__(self):
        self.events = queue.Queue()
        self.posted = queue.Queue()
        self.connections = 0
        self.next_calls = 0
        self.stopping = False
        self.refuse_posts = []  # statuses to answer the next posts with, instead of 202
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def setup(self):
                BaseHTTPRequestHandler.setup(self)
                api.connections += 1

            def log_message(self, *args):
                pass

            def _reply(self, status, payload, headers=None):
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self._reply(404, {"errorType": "NotFound"})
                api.next_calls += 1
                while True:
                    try:
                        request_id, body, headers = api.events.get(timeout=0.1)
                        break
                    except queue.Empty:
                        if api.stopping:
                            return self._reply(500, {"errorType": "Stopping"})
                self._reply(200, body, headers)

            def _read_body(self, headers):
                if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
                    return self.rfile.read(int(self.headers.get("Content-Length", "0")))
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        break
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
                while True:  # trailers, recorded with the headers
                    line = self.rfile.readline().strip()
                    if not line:
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                return b"".join(parts)

            def do_POST(self):
                parts = self.path.split("/")
                headers = {k.lower(): v for k, v in self.headers.items()}
                body = self._read_body(headers)
                if self.path == "/2018-06-01/runtime/init/error":
                    api.posted.put(Posted("init_error", None, headers, body))
                elif len(parts) == 6 and parts[3] == "invocation" and parts[5] in ("response", "error"):
                    api.posted.put(Posted(parts[5], parts[4], headers, body))
                else:
                    return self._reply(404, {"errorType": "NotFound"})
                if api.refuse_posts:
                    status = api.refuse_posts.pop(0)
                    return self._reply(status, {"errorMessage": "refused by the test", "errorType": "Refused"})
                self._reply(202, {"status": "OK"})

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = "127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def push(self, event, request_id=None, deadline_ms=None, raw=None, headers=None):
        request_id = request_id or str(uuid.uuid4())
        body = raw if raw is not None else json.dumps(event).encode()
        h = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms or int(time.time() * 1000) + 3000),
            "Lambda-Runtime-Invoked-Function-Arn": ARN,
        }
        h.update(headers or {})
        self.events.put((request_id, body, h))
        return request_id

    def wait_posted(self, timeout=10.0):
        try:
            return self.posted.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the bootstrap posted nothing within %.0f s" % timeout)

    def close(self):
        self.stopping = True
        self.server.shutdown()
        self.server.server_close()


class Runtime(object):
    """A bootstrap process started against a fake Runtime API."""

    def __init__(self, lang, task_root, handler, env=None, prestarted=False):
        self.api = FakeRuntimeApi()
        self.lang = lang
        self.task_root = task_root
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": task_root,
            "LAMBDA_RUNTIME_DIR": os.path.dirname(PYTHON_BOOTSTRAP if lang == "python" else NODE_BOOTSTRAP),
            "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/" + FUNCTION_NAME,
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }
        full_env.update(env or {})
        argv = [PYTHON, PYTHON_BOOTSTRAP] if lang == "python" else [NODE, NODE_BOOTSTRAP]
        if prestarted:
            # As the platform's sandboxes built ahead: the runtime starts with only the
            # defaults, elsewhere, and gets its function's environment and working directory
            # on a stdin pipe (cwd, then KEY=VALUE entries, NUL-terminated, then an empty one).
            read_end, write_end = os.pipe()
            started_env = {"PATH": full_env["PATH"], "LANG": "C.UTF-8", "TZ": ":UTC", "STARTED_AHEAD": "1",
                           "_RUNTIME_ASSIGNMENT_FD": str(read_end)}
            self.proc = subprocess.Popen(argv, cwd="/", env=started_env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(read_end,))
            os.close(read_end)
            time.sleep(0.3)
            message = task_root.encode() + b"\0"
            message += b"".join(("%s=%s" % kv).encode() + b"\0" for kv in full_env.items()) + b"\0"
            os.write(write_end, message)
            os.close(write_end)
        else:
            self.proc = subprocess.Popen(argv, cwd=task_root, env=full_env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._out = []
        self._err = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for t in self._readers:
            t.start()

    @staticmethod
    def _read(stream, sink):
        for line in iter(stream.readline, b""):
            sink.append(line.decode("utf-8", "replace"))

    def invoke(self, event=None, timeout=10.0, **kwargs):
        """Queue one event and return what the bootstrap posted for it."""
        request_id = self.api.push(event, **kwargs)
        posted = self.api.wait_posted(timeout)
        assert posted.request_id == request_id, (posted, self.stdout, self.stderr)
        return posted

    @property
    def stdout(self):
        return "".join(self._out)

    @property
    def stderr(self):
        return "".join(self._err)

    def wait_stdout(self, needle, timeout=5.0):
        """Wait until the process wrote ``needle`` to stdout; return all of stdout."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.stdout:
                return self.stdout
            time.sleep(0.01)
        raise AssertionError("%r not in stdout:\n%s\nstderr:\n%s" % (needle, self.stdout, self.stderr))

    def wait_exit(self, timeout=10.0):
        code = self.proc.wait(timeout=timeout)
        for t in self._readers:
            t.join(timeout=2)
        return code

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.api.close()


def _write_tree(root, files):
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)


@pytest.fixture
def start(tmp_path):
    """``start(lang, files, handler, env=None)`` runs a bootstrap over a task root holding
    ``files`` (relative path -> source)."""
    started = []

    def _start(lang, files, handler, env=None, prestarted=False):
        if lang == "node" and not NODE:
            pytest.skip("node is not installed")
        root = tmp_path / ("task%d" % len(started))
        root.mkdir()
        _write_tree(str(root), files)
        rt = Runtime(lang, str(root), handler, env, prestarted)
        started.append(rt)
        return rt

    yield _start
    for rt in started:
        rt.close()
