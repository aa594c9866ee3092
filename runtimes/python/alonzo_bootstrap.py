"""Alonzo's Python runtime bootstrap: speaks the Lambda Runtime API (2018-06-01).

Imported by ``/var/runtime/bootstrap.py``, the program the platform starts as
``python3.X -S /var/runtime/bootstrap.py`` with the working directory ``/var/task``, which
then calls ``main()``; run as a script, it runs ``main()`` itself.  A module, not the main
script, so that the interpreter loads it from the bytecode the server compiles for each
interpreter at start-up (``__pycache__``) instead of compiling 900 lines at every cold
start.  Standard library only; works on Python 3.9 to 3.13.

It mirrors the behaviour of AWS's managed Python runtime (awslambdaric):

* init: ``LAMBDA_TASK_ROOT``, ``/opt/python/lib/python3.X/site-packages`` and
  ``/opt/python`` go in front of ``sys.path``; ``_HANDLER`` is ``module.function``
  where the module part may be a path (``pkg/mod``) or dotted (``pkg.mod``); init
  failures are posted to ``/runtime/init/error`` and the process exits with status 1.
* loop: ``GET /runtime/invocation/next``, build the ``LambdaContext``, call the
  handler, ``POST .../response`` (JSON, ``Decimal`` as a number) or ``.../error``.
* logging: the root logger gets AWS's handler and format; ``print`` output is
  flushed at every line and at the end of every invocation.

Start-up time matters, so the HTTP client is a small HTTP/1.1 client on ``_socket``
(one keep-alive connection), and ``logging``, ``traceback`` and ``decimal`` are only
touched when user code (or an error) needs them.
"""

import os
import sys
import time

import _socket

if sys.flags.no_site:
    # The platform starts the interpreter with -S: the host's site-packages (and any .pth
    # hooks installed there) are not part of a Lambda runtime, and skipping them saves most
    # of the interpreter's start-up. Keep the two builtins `site` would have added that
    # function code does use.
    import builtins

    def _quitter(code=None):
        raise SystemExit(code)

    builtins.exit = builtins.quit = _quitter



def _await_assignment():
    """A runtime started ahead of its function (the platform's pre-started sandboxes) is
    started with ``_RUNTIME_ASSIGNMENT_FD`` naming a pipe, and reads from it the function's
    working directory and environment before anything else reads the environment:
    NUL-terminated ``cwd`` then ``KEY=VALUE`` entries, then an empty entry. From here on the
    process is what a runtime started with that environment would be: ``os.environ``,
    ``sys.path`` (for ``PYTHONPATH``), the working directory, no extra descriptor."""
    fd = os.environ.get("_RUNTIME_ASSIGNMENT_FD")
    if not fd:
        return
    _serve_if_launcher()
    fd = int(fd)
    data = b""
    while not data.endswith(b"\0\0"):
        chunk = os.read(fd, 65536)
        if not chunk:
            sys.stderr.write("alonzo: the platform closed the assignment pipe\n")
            sys.exit(1)
        data += chunk
    os.close(fd)
    entries = data[:-2].split(b"\0")
    old_paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    # What the interpreter itself added at start-up (LC_CTYPE, by PEP 538's locale coercion)
    # it would have added for the function too: it is not in the environment it started with.
    with open("/proc/self/environ", "rb") as f:
        started_with = set(e.partition(b"=")[0] for e in f.read().split(b"\0"))
    added = [(k, v) for k, v in os.environb.items() if k not in started_with]
    os.environ.clear()
    for key, value in added:
        os.environb[key] = value
    for entry in entries[1:]:
        key, _, value = entry.partition(b"=")
        os.environb[key] = value
    new_paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if new_paths != old_paths:
        rest = [p for p in sys.path[1:] if p not in old_paths]
        sys.path[1:] = [p for p in new_paths if p] + rest
    os.chdir(entries[0])


_LAUNCHER_FD = 5
_LAUNCHER_MEMFD = "/memfd:_alonzo_launcher (deleted)"


class _ExtensionSpec(object):
    """What ``_imp.create_dynamic`` reads of a module spec (its name and file)."""

    def __init__(self, name, origin):
        self.name = name
        self.origin = origin


def _serve_if_launcher():
    """In the platform's launcher (an interpreter started once, which forks one copy per
    sandbox built ahead), descriptor 5 is a memfd holding the ``_alonzo_launcher`` extension
    module. It is loaded from there and removed from sight; its ``serve()`` returns only in a
    copy that is a sandbox's runtime, confined and waiting for its function as a runtime
    started in that sandbox would be (descriptor 5 closed)."""
    try:
        os.fstat(_LAUNCHER_FD)
    except OSError:
        return
    path = "/proc/self/fd/%d" % _LAUNCHER_FD
    if os.readlink(path) != _LAUNCHER_MEMFD:
        return
    import _imp

    launcher = _imp.create_dynamic(_ExtensionSpec("_alonzo_launcher", path))
    sys.modules.pop("_alonzo_launcher", None)
    launcher.serve()


_RUNTIME_FILE = os.path.abspath(__file__)
_STUB_FILE = os.path.join(os.path.dirname(_RUNTIME_FILE), "bootstrap.py")
_API_PREFIX = "/2018-06-01"
_ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
_XRAY_CAUSE_HEADER = "Lambda-Runtime-Function-XRay-Error-Cause"
_ERROR_LOG_LINE_TERMINATE = "\r"
_ERROR_LOG_IDENT = "\u00a0"  # AWS indents traceback lines with NO-BREAK SPACE

# Set by main() from the function's environment: a runtime started ahead executes this
# whole module before it knows its function.
_LOG_FORMAT_JSON = False
_TEXT_LOG_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"

# Read by the logging filter: the request being served (AWS leaves the last id in place
# between invocations, and "" before the first).
_current_request_id = None
_current_tenant_id = None


class FaultException(Exception):
    """An error the runtime reports with one of the ``Runtime.*`` error types."""

    MARSHAL_ERROR = "Runtime.MarshalError"
    UNMARSHAL_ERROR = "Runtime.UnmarshalError"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
    LAMBDA_CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

    def __init__(self, exception_type, msg, trace=None):
        Exception.__init__(self, msg)
        self.exception_type = exception_type
        self.msg = msg
        self.trace = trace


# --------------------------------------------------------------------------------------
# Runtime API client: HTTP/1.1 over one keep-alive connection.
# --------------------------------------------------------------------------------------


class RuntimeApiError(Exception):
    pass


def _quote(value):
    """Percent-encode a path segment (request ids are UUIDs; this is for safety)."""
    safe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
    if all(c in safe for c in value):
        return value
    return "".join(c if c in safe else "".join("%%%02X" % b for b in c.encode("utf-8")) for c in value)


def _header_value(value):
    """Make a string safe to send as one header value."""
    value = value.replace("\r", " ").replace("\n", " ")
    return value.encode("latin-1", "replace").decode("latin-1")


class RuntimeClient(object):
    def __init__(self, address):
        host, _, port = address.rpartition(":")
        if not host:
            host, port = address, "80"
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        self.host = host
        self.port = int(port)
        self.host_header = address
        self.family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
        self.sock = None
        self.buf = b""
        self.user_agent = "alonzo-python/%d.%d.%d" % sys.version_info[:3]

    def _connect(self):
        sock = _socket.socket(self.family, _socket.SOCK_STREAM)
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        except OSError:
            pass
        sock.connect((self.host, self.port))
        self.sock = sock
        self.buf = b""

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.buf = b""

    def request(self, method, path, body=None, headers=None):
        """Send one request; return (status, headers with lower-case names, body bytes).

        A connection the server closed while idle is reopened once; the request is sent
        again only when no byte of a response had arrived.
        """
        head = ["%s %s%s HTTP/1.1" % (method, _API_PREFIX, path), "Host: " + self.host_header,
                "User-Agent: " + self.user_agent]
        if body is not None:
            head.append("Content-Length: %d" % len(body))
        if headers:
            for name, value in headers.items():
                head.append("%s: %s" % (name, _header_value(value)))
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if body:
            data += body
        for attempt in (0, 1):
            reused = self.sock is not None
            try:
                if self.sock is None:
                    self._connect()
                self.sock.sendall(data)
                return self._read_response()
            except _IncompleteResponse:
                self.close()
                if attempt or not reused:
                    raise RuntimeApiError("connection closed by the Runtime API")
            except OSError as e:
                self.close()
                if attempt or not reused:
                    raise RuntimeApiError("Runtime API request failed: %s" % e)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def _read_response(self):
        try:
            while b"\r\n\r\n" not in self.buf:
                self._fill()
        except EOFError:
            raise _IncompleteResponse()
        raw_head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = raw_head.split(b"\r\n")
        status = int(lines[0].split(None, 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            try:
                text = value.strip().decode("utf-8")
            except UnicodeDecodeError:
                text = value.strip().decode("latin-1")
            headers[name.strip().decode("latin-1").lower()] = text
        try:
            if "chunked" in headers.get("transfer-encoding", "").lower():
                body = self._read_chunked()
            elif "content-length" in headers:
                body = self._read_exact(int(headers["content-length"]))
            elif status in (204, 304) or 100 <= status < 200:
                body = b""
            else:  # no length: the body ends when the server closes the connection
                while True:
                    try:
                        self._fill()
                    except EOFError:
                        break
                body, self.buf = self.buf, b""
                self.close()
                return status, headers, body
        except EOFError:
            self.close()
            raise RuntimeApiError("connection closed by the Runtime API in the middle of a response")
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def _read_exact(self, n):
        if len(self.buf) < n:
            # Collect and join once: a multi-megabyte event arrives in many pieces.
            parts = [self.buf]
            have = len(self.buf)
            while have < n:
                chunk = self.sock.recv(max(65536, n - have))
                if not chunk:
                    raise EOFError
                parts.append(chunk)
                have += len(chunk)
            self.buf = b"".join(parts)
        body, self.buf = self.buf[:n], self.buf[n:]
        return body

    def _read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _read_chunked(self):
        parts = []
        while True:
            size = int(self._read_line().split(b";")[0].strip(), 16)
            if size == 0:
                while self._read_line():  # trailers, then the empty line
                    pass
                return b"".join(parts)
            parts.append(self._read_exact(size))
            self._read_line()

    def _post(self, path, body, headers):
        status, _, resp = self.request("POST", path, body, headers)
        if status == 202:
            return
        message = ("Request to Lambda Runtime '%s' endpoint failed. Reason: '%d'. Response body: '%s'"
                   % (path, status, resp.decode("utf-8", "replace")))
        if 400 <= status < 500:
            # The platform refused this answer (unknown request id, response too large…):
            # it has failed the invocation itself; carry on with the next one.
            sys.stderr.write("alonzo: %s\n" % message)
            return
        raise RuntimeApiError(message)

    def next_invocation(self):
        status, headers, body = self.request("GET", "/runtime/invocation/next")
        if status != 200:
            raise RuntimeApiError("Failed to get next invocation: HTTP %d: %s"
                                  % (status, body.decode("utf-8", "replace")))
        return headers, body

    def post_result(self, request_id, body, content_type):
        self._post("/runtime/invocation/%s/response" % _quote(request_id), body,
                   {"Content-Type": content_type})

    def post_error(self, request_id, error_json, error_type, xray_json=None):
        headers = {"Content-Type": "application/json", _ERROR_TYPE_HEADER: error_type}
        if xray_json and len(xray_json) < 1024 * 1024:
            headers[_XRAY_CAUSE_HEADER] = xray_json
        self._post("/runtime/invocation/%s/error" % _quote(request_id), error_json.encode("utf-8"), headers)

    def post_init_error(self, error_json, error_type):
        self._post("/runtime/init/error", error_json.encode("utf-8"),
                   {"Content-Type": "application/json", _ERROR_TYPE_HEADER: error_type})


class _IncompleteResponse(Exception):
    pass


# --------------------------------------------------------------------------------------
# JSON.  ``import json`` costs more than the rest of the runtime's start-up (it imports
# ``re`` and ``enum``), so the fast path drives the ``_json`` C accelerator directly; the
# ``json`` module is imported only when something unusual happens (an error message to
# build, an interpreter without the accelerator).  AWS's runtime uses simplejson and
# writes ``Decimal`` as a JSON number; so does this one.
# --------------------------------------------------------------------------------------

_WHITESPACE = " \t\n\r"
_DECIMAL_TAG = "\x00alonzo-decimal-%d-%%d\x00" % (os.getpid() ^ int(time.time() * 1e6))
# AWS's python3.12 runtime alone writes non-ASCII characters unescaped (set by main()).
_ENSURE_ASCII = True

try:
    import _json as _cjson

    class _ScanContext(object):
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        memo = None

        @staticmethod
        def parse_constant(name):
            return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]

    _scan_once = _cjson.make_scanner(_ScanContext())
    _c_make_encoder = _cjson.make_encoder
    _c_encode_ascii = _cjson.encode_basestring_ascii
    _c_encode = _cjson.encode_basestring
except Exception:  # pragma: no cover - interpreters without the accelerator
    _scan_once = None
    _c_make_encoder = None


def json_loads(text):
    """``json.loads`` for str or bytes, through the C scanner when possible."""
    if _scan_once is not None:
        try:
            s = text.decode("utf-8") if isinstance(text, bytes) else text
            if s.startswith("\ufeff"):
                raise ValueError("BOM")
            start = len(s) - len(s.lstrip(_WHITESPACE))
            value, end = _scan_once(s, start)
            if not s[end:].strip(_WHITESPACE):
                return value
        except Exception:
            pass  # the json module below raises the proper error (or copes)
    import json

    return json.loads(text)


class _Encoding(object):
    """One encoding: the ``default`` hook with Decimal support, and its placeholders."""

    def __init__(self):
        self.decimals = None

    def default(self, obj):
        decimal = sys.modules.get("decimal")
        if decimal is not None and isinstance(obj, decimal.Decimal):
            if obj.is_nan():
                return float("nan")
            if self.decimals is None:
                self.decimals = []
            tag = _DECIMAL_TAG % len(self.decimals)
            self.decimals.append((tag, str(obj)))
            return tag
        raise TypeError("Object of type %s is not JSON serializable" % obj.__class__.__name__)


def to_json(obj):
    """Serialise like AWS's runtime: compact separators (", ", ": "), NaN allowed."""
    encoding = _Encoding()
    text = None
    quote = _c_encode_ascii if _ENSURE_ASCII else _c_encode
    if _c_make_encoder is not None:
        try:
            encoder = _c_make_encoder({}, encoding.default, quote, None, ": ", ", ", False, False, True)
        except Exception:  # pragma: no cover - a C API this code does not know
            encoder = None
        if encoder is not None:
            text = "".join(encoder(obj, 0))
    if text is None:  # pragma: no cover
        import json

        quote = None
        text = json.JSONEncoder(ensure_ascii=_ENSURE_ASCII, default=encoding.default).encode(obj)
    if encoding.decimals:
        for tag, number in encoding.decimals:
            encoded = quote(tag) if quote else '"%s"' % tag.replace("\x00", "\\u0000")
            text = text.replace(encoded, number)
    return text


# --------------------------------------------------------------------------------------
# The context object.
# --------------------------------------------------------------------------------------


class CognitoIdentity(object):
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __repr__(self):
        return "CognitoIdentity([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.cognito_identity_id, self.cognito_identity_pool_id)


class Client(object):
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]

    def __repr__(self):
        return "Client([%s])" % ",".join("%s=%s" % (f, getattr(self, f)) for f in self.__slots__)


class ClientContext(object):
    __slots__ = ["custom", "env", "client"]

    def __repr__(self):
        return "ClientContext([custom=%s,env=%s,client=%s])" % (self.custom, self.env, self.client)


def _obj_from_dict(cls, values):
    if values is None:
        return None
    obj = cls()
    for field in cls.__slots__:
        setattr(obj, field, values.get(field) if isinstance(values, dict) else None)
    return obj


class LambdaContext(object):
    def __init__(self, invoke_id, client_context, cognito_identity, epoch_deadline_time_in_ms,
                 invoked_function_arn=None, tenant_id=None):
        env = os.environ
        self.aws_request_id = invoke_id
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id
        self._w3c_fields = {}
        if isinstance(client_context, dict) and "w3c" in client_context:
            raw = client_context.pop("w3c")
            if isinstance(raw, dict):
                self._w3c_fields = {k: raw[k] for k in ("traceparent", "tracestate", "baggage")
                                    if isinstance(raw.get(k), str)}
        self.client_context = _obj_from_dict(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _obj_from_dict(Client, self.client_context.client)
        self.identity = _obj_from_dict(CognitoIdentity, {})
        if isinstance(cognito_identity, dict):
            self.identity.cognito_identity_id = cognito_identity.get("cognitoIdentityId")
            self.identity.cognito_identity_pool_id = cognito_identity.get("cognitoIdentityPoolId")
        self._epoch_deadline_time_in_ms = epoch_deadline_time_in_ms

    def get_remaining_time_in_millis(self):
        delta_ms = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return delta_ms if delta_ms > 0 else 0

    def w3c(self):
        return dict(self._w3c_fields)

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,function_name=%s,"
            "memory_limit_in_mb=%s,function_version=%s,invoked_function_arn=%s,client_context=%s,"
            "identity=%s,tenant_id=%s])" % (
                self.aws_request_id, self.log_group_name, self.log_stream_name, self.function_name,
                self.memory_limit_in_mb, self.function_version, self.invoked_function_arn,
                self.client_context, self.identity, self.tenant_id))


def _parse_json_header(value, name):
    try:
        return json_loads(value)
    except Exception as e:
        raise FaultException(FaultException.LAMBDA_CONTEXT_UNMARSHAL_ERROR,
                             "Unable to parse %s JSON: %s" % (name, e))


# --------------------------------------------------------------------------------------
# Logging.  The root logger is configured as AWS does, but only once user code imports
# ``logging`` (it costs several milliseconds of start-up otherwise).
# --------------------------------------------------------------------------------------


def _log_level_from_env():
    level = (os.environ.get("AWS_LAMBDA_LOG_LEVEL") or "").upper()
    if level == "TRACE":
        level = "DEBUG"
    if not level and _LOG_FORMAT_JSON:
        level = "INFO"  # Lambda's default application log level for the JSON format
    return level


def _configure_logging(logging):
    """Install AWS's handler on the root logger of the just-imported ``logging`` module."""
    if getattr(logging, "_alonzo_configured", False):
        return
    logging._alonzo_configured = True
    logging.Formatter.converter = time.gmtime

    class LambdaLoggerHandler(logging.Handler):
        def emit(self, record):
            try:
                sys.stdout.write(self.format(record))
            except Exception:
                self.handleError(record)

    class LambdaLoggerFilter(logging.Filter):
        def filter(self, record):
            record.aws_request_id = _current_request_id or ""
            record.tenant_id = _current_tenant_id
            return True

    handler = LambdaLoggerHandler()
    if _LOG_FORMAT_JSON:
        handler.setFormatter(_make_json_formatter(logging))
    else:
        handler.setFormatter(logging.Formatter(_TEXT_LOG_FORMAT, "%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(LambdaLoggerFilter())
    root = logging.getLogger()
    level = _log_level_from_env()
    if level in getattr(logging, "_nameToLevel", {}):
        root.setLevel(level)
    root.addHandler(handler)


_JSON_RESERVED_FIELDS = frozenset((
    "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module", "exc_info",
    "exc_text", "stack_info", "lineno", "funcName", "created", "msecs", "relativeCreated", "thread",
    "threadName", "processName", "process", "aws_request_id", "tenant_id", "taskName"))


def _make_json_formatter(logging):
    class JsonFormatter(logging.Formatter):
        def format(self, record):
            levelno = min(50, max(0, record.levelno)) // 10 * 10
            exc_info = record.exc_info
            result = {
                "timestamp": _iso_time(record.created),
                "level": logging.getLevelName(levelno),
                "message": record.getMessage(),
                "logger": record.name,
                "requestId": getattr(record, "aws_request_id", None),
            }
            if exc_info:
                import traceback

                result["stackTrace"] = traceback.format_tb(exc_info[2])
                result["errorType"] = exc_info[0].__name__
                result["errorMessage"] = str(exc_info[1])
                result["location"] = "%s:%s:%s" % (record.pathname, record.funcName, record.lineno)
            if getattr(record, "tenant_id", None) is not None:
                result["tenantId"] = record.tenant_id
            for key, value in record.__dict__.items():
                if key not in _JSON_RESERVED_FIELDS and key not in result:
                    result[key] = value
            result = {k: v for k, v in result.items() if v is not None}
            import json

            return json.dumps(result, ensure_ascii=False, default=str) + "\n"

    return JsonFormatter()


class _LoggingImportHook(object):
    """A meta-path finder that configures ``logging`` right after its first import."""

    def find_spec(self, name, path=None, target=None):
        if name != "logging":
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec = find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _ConfiguringLoader(spec.loader)
                return spec
        return None


class _ConfiguringLoader(object):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        # The module keeps the real loader; this wrapper only runs the configuration.
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _configure_logging(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


def _install_logging():
    if "logging" in sys.modules:
        _configure_logging(sys.modules["logging"])
    else:
        sys.meta_path.insert(0, _LoggingImportHook())


def _iso_time(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


def _replace_indentation(line):
    n = len(line) - len(line.lstrip(" "))
    return _ERROR_LOG_IDENT * n + line[n:]


def log_error(error_result):
    """Write a failed invocation or init to stdout as AWS's runtime does."""
    if _LOG_FORMAT_JSON:
        record = {"timestamp": _iso_time(time.time()), "level": "ERROR"}
        record.update(error_result)
        sys.stdout.write(to_json(record) + "\n")
        return
    description = "[ERROR]"
    error_type = error_result.get("errorType")
    error_message = error_result.get("errorMessage")
    if error_type:
        description += " " + error_type
    if error_message:
        if error_type:
            description += ":"
        description += " " + error_message
    lines = [description]
    stack_trace = error_result.get("stackTrace")
    if stack_trace is not None:
        lines.append("Traceback (most recent call last):")
        for element in stack_trace:
            if element == "":
                lines.append("")
            else:
                lines.extend(_replace_indentation(line) for line in element.splitlines())
    sys.stdout.write(_ERROR_LOG_LINE_TERMINATE.join(lines) + "\n")


def _flush_output():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _setup_output():
    """Every line of user output reaches the platform at once (AWS: unbuffered)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True, write_through=True)
        except Exception:
            pass


# --------------------------------------------------------------------------------------
# Errors.
# --------------------------------------------------------------------------------------


def make_error(error_message, error_type, stack_trace, invoke_id=None):
    return {
        "errorMessage": error_message if error_message else "",
        "errorType": error_type if error_type else "",
        "requestId": invoke_id if invoke_id is not None else "",
        "stackTrace": stack_trace if stack_trace else [],
    }


def _user_frames(tb):
    """The traceback's frames as tuples, without the leading frames of this file."""
    import traceback

    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(tb)]
    for i, frame in enumerate(frames):
        if frame[0] != _RUNTIME_FILE and frame[0] != _STUB_FILE:
            return frames[i:]
    return frames


def build_fault_result(exc_info, invoke_id=None):
    import traceback

    etype, value, tb = exc_info
    frames = _user_frames(tb)
    # format_list on plain tuples gives AWS's entries (no column carets on 3.11+).
    return make_error(str(value), etype.__name__, traceback.format_list(frames), invoke_id), frames


def make_xray_fault(ex_type, ex_msg, working_dir, frames):
    stack = [{"label": name, "path": filename, "line": lineno} for filename, lineno, name, _ in frames]
    return {
        "working_directory": working_dir,
        "exceptions": [{"message": ex_msg, "type": ex_type, "stack": stack}],
        "paths": list({f[0] for f in frames}),
    }


# --------------------------------------------------------------------------------------
# Init.
# --------------------------------------------------------------------------------------


def _set_sys_path(task_root):
    version = "python%d.%d" % sys.version_info[:2]
    front = [task_root, "/opt/python/lib/%s/site-packages" % version, "/opt/python"]
    runtime_dir = os.path.dirname(_RUNTIME_FILE)
    rest = [p for p in sys.path if p not in front and p != runtime_dir]
    # The runtime directory stays importable (as on Lambda) but behind user code.
    sys.path[:] = front + rest + [runtime_dir]


def get_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise FaultException(FaultException.MALFORMED_HANDLER_NAME, "Bad handler '%s': %s" % (handler, e))
    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise FaultException(FaultException.BUILT_IN_MODULE_CONFLICT,
                                 "Cannot use built-in module %s as a handler module" % modname)
        name = modname.replace("/", ".")
        __import__(name)
        module = sys.modules[name]
    except ImportError as e:
        raise FaultException(FaultException.IMPORT_MODULE_ERROR,
                             "Unable to import module '%s': %s" % (modname, e))
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise FaultException(FaultException.USER_CODE_SYNTAX_ERROR,
                             "Syntax error in module '%s': %s" % (modname, e), trace)
    try:
        return getattr(module, fname)
    except AttributeError:
        raise FaultException(FaultException.HANDLER_NOT_FOUND,
                             "Handler '%s' missing on module '%s'" % (fname, modname))


# --------------------------------------------------------------------------------------
# One invocation.
# --------------------------------------------------------------------------------------


def _unmarshal_event(body, content_type):
    if content_type and not content_type.split(";")[0].strip().lower() == "application/json":
        return body  # AWS hands non-JSON payloads over as bytes
    if not body.strip():
        return {}  # an invoke without payload is the empty object, as on Lambda
    try:
        return json_loads(body)
    except Exception as e:
        raise FaultException(FaultException.UNMARSHAL_ERROR, "Unable to unmarshal input: %s" % e)


def _marshal_response(response):
    if isinstance(response, bytes):
        return response, "application/unknown"
    try:
        return to_json(response).encode("utf-8"), "application/json"
    except Exception as e:
        raise FaultException(FaultException.MARSHAL_ERROR, "Unable to marshal response: %s" % e)


def handle_event(client, request_handler, headers, body):
    global _current_request_id, _current_tenant_id
    invoke_id = headers.get("lambda-runtime-aws-request-id", "")
    tenant_id = headers.get("lambda-runtime-aws-tenant-id")
    _current_request_id = invoke_id
    _current_tenant_id = tenant_id
    trace_id = headers.get("lambda-runtime-trace-id")
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)

    error_result = None
    xray_fault = None
    try:
        client_context = headers.get("lambda-runtime-client-context")
        cognito_identity = headers.get("lambda-runtime-cognito-identity")
        try:
            deadline = int(headers.get("lambda-runtime-deadline-ms", "0"))
        except ValueError:
            deadline = 0
        context = LambdaContext(
            invoke_id,
            _parse_json_header(client_context, "Client Context") if client_context else None,
            _parse_json_header(cognito_identity, "Cognito Identity") if cognito_identity else None,
            deadline,
            headers.get("lambda-runtime-invoked-function-arn"),
            tenant_id,
        )
        event = _unmarshal_event(body, headers.get("content-type"))
        response = request_handler(event, context)
        result, content_type = _marshal_response(response)
    except FaultException as e:
        xray_fault = make_xray_fault("LambdaValidationError", e.msg, os.getcwd(), [])
        error_result = make_error(e.msg, e.exception_type, e.trace, invoke_id)
    except Exception:
        exc_info = sys.exc_info()
        error_result, frames = build_fault_result(exc_info, invoke_id)
        xray_fault = make_xray_fault(exc_info[0].__name__, str(exc_info[1]), os.getcwd(), frames)
        del exc_info

    if error_result is not None:
        log_error(error_result)
        _flush_output()
        try:
            xray_json = to_json(xray_fault)
        except Exception:
            xray_json = None
        client.post_error(invoke_id, to_json(error_result), error_result["errorType"], xray_json)
    else:
        _flush_output()
        client.post_result(invoke_id, result, content_type)


def _read_settings():
    """The module's settings that come from the function's environment."""
    global _LOG_FORMAT_JSON, _ENSURE_ASCII
    _LOG_FORMAT_JSON = (os.environ.get("AWS_LAMBDA_LOG_FORMAT") or "").upper() == "JSON"
    _ENSURE_ASCII = os.environ.get("AWS_EXECUTION_ENV") != "AWS_Lambda_python3.12"


def main():
    # A runtime started ahead has executed this whole module (imports, definitions: about
    # 0.8 ms) while it waited; only now does it read its function's environment.
    _await_assignment()
    _read_settings()
    _setup_output()
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or "/var/task"
    _set_sys_path(task_root)
    _install_logging()

    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        sys.stderr.write("AWS_LAMBDA_RUNTIME_API is not set\n")
        sys.exit(2)
    client = RuntimeClient(address)

    try:
        request_handler = get_handler(os.environ.get("_HANDLER", ""))
    except Exception as e:
        if isinstance(e, FaultException):
            error_result = make_error(e.msg, e.exception_type, e.trace)
        else:
            error_result, _ = build_fault_result(sys.exc_info())
        log_error(error_result)
        _flush_output()
        try:
            client.post_init_error(to_json(error_result), error_result["errorType"])
        except Exception as post_error:
            sys.stderr.write("alonzo: could not report the init error: %s\n" % post_error)
        sys.exit(1)

    while True:
        try:
            headers, body = client.next_invocation()
            handle_event(client, request_handler, headers, body)
        except RuntimeApiError as e:
            # The platform went away or refused us: nothing left to serve.
            sys.stderr.write("alonzo: %s\n" % e)
            _flush_output()
            sys.exit(1)


if __name__ == "__main__":
    main()
