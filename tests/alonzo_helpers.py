"""Shared machinery for the black-box suite: the server process, clients, zips, raw signing.

Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import configparser
import datetime as dt
import hashlib
import json
import io
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Mapping
from unittest import mock
from urllib.parse import quote

import boto3
import botocore.auth
import botocore.parsers
import requests
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

REPO = Path(__file__).resolve().parent.parent
ALONZO_BIN = Path(os.environ.get("ALONZO_BIN", REPO / "target" / "release" / "alonzo"))

REGION = "us-east-1"
ACCOUNT = "000000000000"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/alonzo-test-role"
TEST_KEY_ID = "AKIAALONZOTEST0000001"
TEST_SECRET = "alonzoTestSecretKey/0123456789abcdefGHIJ"

AVAILABLE_RUNTIMES = ["python3.11", "nodejs20.x", "provided", "provided.al2", "provided.al2023"]
LAST_MODIFIED_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Variables that would let the developer's machine leak into a test process.
_LEAKY_PREFIXES = ("AWS_", "ALONZO_", "TF_", "OTEL_")
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy"}


def clean_base_env() -> dict[str, str]:
    """The current environment minus AWS/Alonzo/Terraform settings and proxies."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_LEAKY_PREFIXES) and k.lower() not in _PROXY_VARS
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll_until(pred: Callable[[], object], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Calls `pred` until it returns something truthy; returns that value or fails."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            val = pred()
            if val:
                return val
        except Exception as e:  # noqa: BLE001 - the predicate may fail while waiting
            last_exc = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_exc!r}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------------------

ALL_SERVERS: list["AlonzoServer"] = []


class AlonzoServer:
    """One `alonzo serve` process (restartable) on a fixed port with a fixed data dir."""

    def __init__(
        self,
        root: Path,
        *,
        port: int | None = None,
        credentials: bool = True,
        region: str = REGION,
        account: str = ACCOUNT,
        extra_env: Mapping[str, str] | None = None,
        owner: str = "session",
        data_dir: Path | None = None,
    ):
        self.root = Path(root)
        self.data_dir = Path(data_dir) if data_dir is not None else self.root / "data"
        self.log_dir = self.root / "logs"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        # Servers run in parallel: each gets its own metrics port (not the default 9464).
        self.metrics_port = free_port()
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.region = region
        self.account = account
        self.owner = owner
        self.access_key = TEST_KEY_ID if credentials else None
        self.secret_key = TEST_SECRET if credentials else None
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.log_files: list[Path] = []
        self.server_env = clean_base_env()
        if credentials:
            self.server_env["ALONZO_ACCESS_KEY_ID"] = TEST_KEY_ID
            self.server_env["ALONZO_SECRET_ACCESS_KEY"] = TEST_SECRET
        if region != REGION:
            self.server_env["ALONZO_REGION"] = region
        if account != ACCOUNT:
            self.server_env["ALONZO_ACCOUNT_ID"] = account
        if extra_env:
            self.server_env.update(extra_env)
        # Empty AWS config files so that no machine setting leaks into subprocesses.
        self.aws_config_file = self.root / "aws-config"
        self.aws_credentials_file = self.root / "aws-credentials"
        self.aws_config_file.touch()
        self.aws_credentials_file.touch()
        ALL_SERVERS.append(self)

    # -- process control ---------------------------------------------------------------

    def command(self) -> list[str]:
        return [
            str(ALONZO_BIN), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir),
            "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
        ]

    def start(self, timeout: float = 30.0) -> "AlonzoServer":
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        if not ALONZO_BIN.exists():
            raise AssertionError(f"alonzo binary not found at {ALONZO_BIN} (build with `cargo build --release` or set ALONZO_BIN)")
        self.starts += 1
        log = self.log_dir / f"alonzo-{self.starts}.log"
        self.log_files.append(log)
        with open(log, "wb") as fh:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=self.server_env,
                cwd=self.root,
            )
        self.wait_healthy(timeout)
        if self.access_key is None:
            self._load_generated_credentials()
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError(f"alonzo exited with {rc} before becoming healthy:\n{self.log_tail()}")
            try:
                r = requests.get(f"{self.endpoint}/_alonzo/health", timeout=2)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"alonzo not healthy after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Sends `sig` to the server (our own child, by PID) and waits; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"alonzo did not exit within {timeout}s of signal {sig}:\n{self.log_tail()}")
        return self.proc.returncode

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def restart(self, timeout: float = 30.0) -> "AlonzoServer":
        rc = self.stop()
        assert rc in (0, None, -signal.SIGKILL), f"graceful stop exited with {rc}:\n{self.log_tail()}"
        return self.start(timeout)

    def close(self) -> None:
        try:
            self.stop(timeout=10)
        except AssertionError:
            pass

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- logs --------------------------------------------------------------------------

    def log_text(self, start: int | None = None) -> str:
        files = self.log_files if start is None else [self.log_files[start - 1]]
        return "".join(f.read_text(errors="replace") for f in files if f.exists())

    def log_tail(self, lines: int = 150) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- credentials and clients -------------------------------------------------------

    def _load_generated_credentials(self) -> None:
        cp = configparser.ConfigParser()
        cp.read(self.data_dir / "credentials")
        self.access_key = cp["default"]["aws_access_key_id"]
        self.secret_key = cp["default"]["aws_secret_access_key"]

    @property
    def env(self) -> dict[str, str]:
        """Environment for AWS-aware subprocesses (aws CLI, terraform, `alonzo functions`)."""
        env = clean_base_env()
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID=self.access_key or "",
            AWS_SECRET_ACCESS_KEY=self.secret_key or "",
            AWS_REGION=self.region,
            AWS_DEFAULT_REGION=self.region,
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE=str(self.aws_config_file),
            AWS_SHARED_CREDENTIALS_FILE=str(self.aws_credentials_file),
            AWS_PAGER="",
        )
        return env

    def client(self, *, key: str | None = None, secret: str | None = None, validate: bool = True, region: str | None = None, **config_kw):
        cfg = dict(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            parameter_validation=validate,
        )
        cfg.update(config_kw)
        session = boto3.session.Session(
            aws_access_key_id=key if key is not None else self.access_key,
            aws_secret_access_key=secret if secret is not None else self.secret_key,
            region_name=region or self.region,
        )
        return session.client("lambda", endpoint_url=self.endpoint, config=Config(**cfg))

    def function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"


# --------------------------------------------------------------------------------------
# Zips
# --------------------------------------------------------------------------------------

PY_HANDLER = "def handler(event, context):\n    return event\n"


def make_zip(entries: Iterable[tuple[str | zipfile.ZipInfo, bytes | str]], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries:
            info = name if isinstance(name, zipfile.ZipInfo) else zipfile.ZipInfo(name)
            if not isinstance(name, zipfile.ZipInfo):
                info.external_attr = (0o100644 << 16)
                info.create_system = 3
            info.compress_type = compression
            zf.writestr(info, data)
    return buf.getvalue()


def python_zip(marker: str | None = None, extra: Mapping[str, bytes | str] | None = None) -> bytes:
    """A python3.11 package with `app.handler`; `marker` makes the bytes (and sha) unique."""
    marker = marker or uuid.uuid4().hex
    entries = [("app.py", PY_HANDLER + f"# {marker}\n")]
    entries += list((extra or {}).items())
    return make_zip(entries)


def node_zip(marker: str | None = None) -> bytes:
    marker = marker or uuid.uuid4().hex
    return make_zip([("index.mjs", f"// {marker}\nexport const handler = async (event) => event;\n")])


def bootstrap_zip(marker: str | None = None) -> bytes:
    marker = marker or uuid.uuid4().hex
    info = zipfile.ZipInfo("bootstrap")
    info.external_attr = (0o100755 << 16)
    info.create_system = 3
    return make_zip([(info, f"#!/bin/sh\n# {marker}\nexit 0\n")])


def symlink_zip(link: str, target: str) -> bytes:
    info = zipfile.ZipInfo(link)
    info.create_system = 3
    info.external_attr = (0o120777 << 16)
    return make_zip([("app.py", PY_HANDLER), (info, target)], compression=zipfile.ZIP_STORED)


def zeros_zip(total_bytes: int, *, entry: str = "zeros.bin", level: int = 9) -> bytes:
    """One deflated entry of `total_bytes` zeros, streamed (never held uncompressed)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        zf.writestr("app.py", PY_HANDLER)
        info = zipfile.ZipInfo(entry)
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as fh:
            chunk = bytes(1 << 20)
            left = total_bytes
            while left > 0:
                n = min(left, len(chunk))
                fh.write(chunk[:n])
                left -= n
    return buf.getvalue()


def big_moderate_zip(total_bytes: int, *, entry_size: int = 10 << 20) -> bytes:
    """Many entries of low-entropy (≈20:1, not bomb-like) data adding up to `total_bytes`."""
    rnd = os.urandom(entry_size)
    table = bytes((98 if i < 4 else 97) for i in range(256))
    data = rnd.translate(table)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("app.py", PY_HANDLER)
        n = 0
        i = 0
        while n < total_bytes:
            zf.writestr(f"data/blob{i:03d}.txt", data)
            n += len(data)
            i += 1
    return buf.getvalue()


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def unique_name(prefix: str = "fn") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------------------
# Lambda helpers
# --------------------------------------------------------------------------------------


def create_kwargs(name: str, zip_bytes: bytes | None = None, **overrides) -> dict:
    kw = dict(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": zip_bytes if zip_bytes is not None else python_zip()},
    )
    kw.update(overrides)
    return kw


def wait_active(client, name: str, timeout: float = 30.0) -> dict:
    def check():
        cfg = client.get_function_configuration(FunctionName=name)
        assert cfg.get("State") != "Failed", f"function went to Failed: {cfg}"
        return cfg if cfg.get("State") == "Active" else None

    return poll_until(check, timeout, what=f"{name} to become Active")


def wait_updated(client, name: str, timeout: float = 30.0) -> dict:
    def check():
        cfg = client.get_function_configuration(FunctionName=name)
        assert cfg.get("LastUpdateStatus") != "Failed", f"update Failed: {cfg}"
        return cfg if cfg.get("LastUpdateStatus") in ("Successful", None) and cfg.get("State") == "Active" else None

    return poll_until(check, timeout, what=f"{name} update to finish")


def create_function(client, name: str | None = None, zip_bytes: bytes | None = None, wait: bool = True, **overrides) -> dict:
    name = name or unique_name()
    resp = client.create_function(**create_kwargs(name, zip_bytes, **overrides))
    if wait:
        wait_active(client, name)
    return resp


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def http_status(resp_or_exc) -> int:
    r = resp_or_exc.response if isinstance(resp_or_exc, ClientError) else resp_or_exc
    return r["ResponseMetadata"]["HTTPStatusCode"]


def list_all_functions(client) -> list[dict]:
    out = []
    for page in client.get_paginator("list_functions").paginate():
        out.extend(page.get("Functions", []))
    return out


def store_snapshot(client) -> dict[str, tuple]:
    """Name → (RevisionId, CodeSha256, LastModified) for every function."""
    return {
        f["FunctionName"]: (f.get("RevisionId"), f.get("CodeSha256"), f.get("LastModified"))
        for f in list_all_functions(client)
    }


def comparable_config(cfg: dict) -> dict:
    cfg = dict(cfg)
    cfg.pop("ResponseMetadata", None)
    return cfg


# --------------------------------------------------------------------------------------
# Raw signed requests
# --------------------------------------------------------------------------------------


def sign_and_send(
    server: AlonzoServer,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    headers: Mapping[str, str] | None = None,
    key: str | None = None,
    secret: str | None = None,
    region: str | None = None,
    service: str = "lambda",
    when: dt.datetime | None = None,
    mutate: Callable[[dict, bytes], tuple[dict, bytes]] | None = None,
) -> requests.Response:
    """Signs like botocore does (SigV4, double-encoded canonical URI) and sends with requests.

    `path` must already be percent-encoded as it goes on the wire (e.g. `%3A` in an ARN).
    `when` (naive UTC) patches the signing clock; `mutate` may tamper with the request after
    signing.
    """
    url = server.endpoint + path
    hdrs = dict(headers or {})
    if body and "Content-Type" not in hdrs:
        hdrs["Content-Type"] = "application/json"
    req = AWSRequest(method=method, url=url, data=body, headers=hdrs)
    creds = Credentials(key if key is not None else server.access_key, secret if secret is not None else server.secret_key)
    signer = botocore.auth.SigV4Auth(creds, service, region or server.region)
    if when is not None:
        with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: when):
            signer.add_auth(req)
    else:
        signer.add_auth(req)
    prepared = req.prepare()
    out_headers = dict(prepared.headers)
    out_body = body
    if mutate is not None:
        out_headers, out_body = mutate(out_headers, out_body)
    return requests.request(method, prepared.url, headers=out_headers, data=out_body, timeout=60, allow_redirects=False)


def parse_like_botocore(client, operation: str, resp: requests.Response) -> dict:
    """Feeds a raw HTTP response through botocore's rest-json parser, as the SDK would."""
    op_model = client.meta.service_model.operation_model(operation)
    parser = botocore.parsers.create_parser("rest-json")
    return parser.parse(
        {"status_code": resp.status_code, "headers": dict(resp.headers), "body": resp.content},
        op_model.output_shape,
    )


def assert_lambda_error(resp: requests.Response, *, status: int | Iterable[int] | None = None, code: str | None = None) -> dict:
    """Checks the Lambda error envelope: x-amzn-ErrorType header + JSON body with Type and message."""
    statuses = [status] if isinstance(status, int) else list(status or [])
    assert 400 <= resp.status_code < 600, f"expected an error status, got {resp.status_code}: {resp.text[:500]}"
    if statuses:
        assert resp.status_code in statuses, f"status {resp.status_code} not in {statuses}: {resp.text[:500]}"
    etype = resp.headers.get("x-amzn-ErrorType")
    assert etype, f"missing x-amzn-ErrorType header: {resp.status_code} {dict(resp.headers)} {resp.text[:300]}"
    assert "<html" not in resp.text.lower()
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {resp.text[:500]!r}")
    assert isinstance(body, dict), body
    assert "Type" in body, f"error body lacks Type: {body}"
    assert ("Message" in body) or ("message" in body), f"error body lacks Message/message: {body}"
    if code is not None:
        assert etype.split(":")[0] == code, f"x-amzn-ErrorType {etype!r} != {code!r}; body {body}"
    return body


def fn_path(name_or_arn: str, suffix: str = "") -> str:
    return f"/2015-03-31/functions/{quote(name_or_arn, safe='')}{suffix}"


def run(cmd: list[str], *, env: Mapping[str, str] | None = None, cwd: str | Path | None = None, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=dict(env) if env is not None else None, cwd=cwd, timeout=timeout, capture_output=True, text=True, input=input)


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def aws_cli() -> list[str]:
    """The AWS CLI v1 of this interpreter (pip's awscli), independent of PATH shims."""
    return [sys.executable, "-m", "awscli"]


def invoke_ok(client, name: str | None = None, event=None, **kw):
    """Invokes synchronously and asserts success; returns the response and the decoded body."""
    if name is not None:
        kw["FunctionName"] = name
    resp = client.invoke(Payload=json.dumps(event if event is not None else {}).encode(), **kw)
    body = resp["Payload"].read()
    assert resp["StatusCode"] == 200, resp
    assert "FunctionError" not in resp, f"unexpected function error: {body[:2000]!r}"
    return resp, json.loads(body)


def expect_error(codes, fn, *args, status=None, **kw) -> ClientError:
    """Calls `fn` and asserts it fails with one of `codes` (and `status`, if given)."""
    codes = {codes} if isinstance(codes, str) else set(codes)
    try:
        resp = fn(*args, **kw)
    except ClientError as e:
        assert error_code(e) in codes, f"expected one of {sorted(codes)}, got {error_code(e)}: {e.response}"
        if status is not None:
            statuses = {status} if isinstance(status, int) else set(status)
            assert http_status(e) in statuses, e.response
        return e
    if isinstance(resp, dict):
        resp = {k: v for k, v in resp.items() if k != "ResponseMetadata"}
    call = f"{getattr(fn, '__name__', fn)}({', '.join(f'{k}={v!r}'[:200] for k, v in kw.items())})"
    raise AssertionError(f"{call} succeeded, expected one of {sorted(codes)}; answer: {str(resp)[:600]}")


def console_login(srv: "AlonzoServer", *, secret: str | None = None) -> requests.Session:
    """A requests session logged in to the web console through its login form (as a browser
    would); the login answer is kept in `last_login`."""
    s = requests.Session()
    console = f"{srv.endpoint}/_alonzo/console"
    page = s.get(f"{console}/login", timeout=10)
    assert page.status_code == 200
    nonce = re.search(r'name="nonce" value="([0-9a-f]{64})"', page.text).group(1)
    r = s.post(
        f"{console}/login",
        data={"access_key_id": srv.access_key, "secret_access_key": secret or srv.secret_key, "nonce": nonce, "next": "/_alonzo/console/"},
        allow_redirects=False,
        timeout=10,
    )
    s.last_login = r
    return s


@contextlib.contextmanager
def running_server(root: Path, **kw):
    """An `AlonzoServer` started for the duration of the block (a test module's private server)."""
    srv = AlonzoServer(root, **kw)
    srv.start()
    try:
        yield srv
    finally:
        srv.close()
