"""The binary itself: CLI, configuration, credentials, shutdown, unknown routes, `alonzo functions`."""

from __future__ import annotations

import configparser
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests
from botocore.exceptions import ClientError

from alonzo_helpers import (
    ALONZO_BIN,
    assert_lambda_error,
    clean_base_env,
    create_function,
    error_code,
    file_mode,
    free_port,
    http_status,
    poll_until,
    node_zip,
    python_zip,
    run,
    sign_and_send,
    unique_name,
)


def alonzo(*args: str, env=None, cwd=None, timeout: float = 60) -> subprocess.CompletedProcess:
    return run([str(ALONZO_BIN), *args], env=env if env is not None else clean_base_env(), cwd=cwd, timeout=timeout)


# --------------------------------------------------------------------------------------
# --help / --version
# --------------------------------------------------------------------------------------


def test_help():
    p = alonzo("--help")
    assert p.returncode == 0, p.stderr
    assert "serve" in p.stdout and "functions" in p.stdout, p.stdout
    p = alonzo("serve", "--help")
    assert p.returncode == 0, p.stderr
    assert "--listen" in p.stdout and "--data-dir" in p.stdout, p.stdout


def test_version():
    p = alonzo("--version")
    assert p.returncode == 0, p.stderr
    assert re.search(r"\d+\.\d+\.\d+", p.stdout), p.stdout


def test_unknown_subcommand_fails():
    p = alonzo("frobnicate")
    assert p.returncode != 0
    assert p.stderr.strip()


# --------------------------------------------------------------------------------------
# Configuration validation
# --------------------------------------------------------------------------------------


def _serve_and_expect_failure(tmp_path, listen: str, extra_env: dict, keyword: str) -> subprocess.CompletedProcess:
    env = clean_base_env()
    env.update(ALONZO_ACCESS_KEY_ID="AKIAALONZOTEST0000001", ALONZO_SECRET_ACCESS_KEY="secret-secret-secret-secret")
    env.update(extra_env)
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    p = alonzo("serve", "--listen", listen, "--data-dir", str(data), env=env, timeout=15)
    out = p.stdout + p.stderr
    assert p.returncode != 0, f"expected a non-zero exit, got 0:\n{out}"
    assert re.search(keyword, out, re.I), f"message should mention {keyword!r}:\n{out}"
    assert "panicked" not in out, out
    return p


@pytest.mark.parametrize(
    "listen,extra_env,keyword",
    [
        ("notanaddress", {}, r"listen|address"),
        ("127.0.0.1:99999", {}, r"listen|address|port"),
        ("127.0.0.1:{port}", {"ALONZO_ACCOUNT_ID": "abc"}, r"account"),
        ("127.0.0.1:{port}", {"ALONZO_ACCOUNT_ID": "12345"}, r"account"),
        ("127.0.0.1:{port}", {"ALONZO_REGION": ""}, r"region"),
        ("127.0.0.1:{port}", {"ALONZO_LOG_RATE_LIMIT": "0"}, r"log-rate-limit.*at least 1 byte"),
        ("127.0.0.1:{port}", {"ALONZO_LOG_MAX_BYTES_PER_FUNCTION": "10XB"}, r"log-max-bytes-per-function.*unknown unit"),
        ("127.0.0.1:{port}", {"ALONZO_LOG_SWEEP_INTERVAL": "soon"}, r"log-sweep-interval"),
        ("127.0.0.1:{port}", {"ALONZO_PREBUILT_SANDBOXES": "65"}, r"prebuilt-sandboxes"),
        ("127.0.0.1:{port}", {"ALONZO_WORKER_THREADS": "0"}, r"worker-threads"),
    ],
    ids=["listen-garbage", "listen-bad-port", "account-abc", "account-short", "region-empty", "log-rate-zero", "log-cap-unit", "log-sweep-garbage", "prebuilt-too-many", "worker-threads-zero"],
)
def test_invalid_config_exits_before_binding(tmp_path, listen, extra_env, keyword):
    # Hold the port ourselves: a server that bound before validating would complain about
    # the address being in use instead of naming the bad setting.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        _serve_and_expect_failure(tmp_path, listen.format(port=port), extra_env, keyword)


def test_port_in_use_fails(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        _serve_and_expect_failure(tmp_path, f"127.0.0.1:{port}", {}, r"address|in use|bind|listen")


# --------------------------------------------------------------------------------------
# Generated credentials
# --------------------------------------------------------------------------------------


def test_generated_credentials_file(server_factory):
    srv = server_factory(credentials=False)
    srv.start()
    cred = srv.data_dir / "credentials"
    assert cred.exists(), "first start without ALONZO_ACCESS_KEY_ID must write <data-dir>/credentials"
    assert file_mode(cred) == 0o600, oct(file_mode(cred))
    cp = configparser.ConfigParser()
    cp.read(cred)
    assert cp.sections() == ["default"], cp.sections()
    key, secret = cp["default"]["aws_access_key_id"], cp["default"]["aws_secret_access_key"]
    assert len(key) >= 16 and len(secret) >= 30, (key, secret)
    log1 = srv.log_text(1)
    assert secret in log1 or str(cred) in log1, f"first start should say how to configure the AWS CLI:\n{log1}"

    client = srv.client()
    assert client.list_functions()["Functions"] == []
    name = unique_name()
    create_function(client, name)
    with pytest.raises(ClientError) as ei:
        srv.client(secret=secret + "x").list_functions()
    assert error_code(ei.value) == "InvalidSignatureException"

    content = cred.read_bytes()
    srv.restart()
    assert cred.read_bytes() == content, "the credentials file must be reused, not regenerated"
    assert file_mode(cred) == 0o600
    log2 = srv.log_text(2)
    assert secret not in log2, "the secret must not be printed again on a later start"
    assert srv.client().get_function(FunctionName=name)["Configuration"]["FunctionName"] == name


def test_printed_instructions_configure_the_aws_cli(server_factory, tmp_path):
    """Following the first-start instructions literally gives a working AWS CLI (v1, pip)."""
    srv = server_factory(credentials=False)
    srv.start()
    log = srv.log_text(1)
    exported: dict[str, str] = {}
    for line in log.splitlines():
        if "export " in line:
            for key, value in re.findall(r"\b([A-Z][A-Z0-9_]*)=(\S+)", line.split("export ", 1)[1]):
                exported[key] = value.strip("'\"")
    assert exported, f"no `export VAR=value` instructions printed on first start:\n{log}"
    home = tmp_path / "home"
    home.mkdir()
    env = clean_base_env()
    env.update(exported)
    env.update(HOME=str(home), AWS_EC2_METADATA_DISABLED="true")
    from alonzo_helpers import aws_cli

    p = run(aws_cli() + ["lambda", "list-functions", "--output", "json"], env=env, timeout=120)
    assert p.returncode == 0, f"aws CLI with {exported} failed: {p.stderr}"
    assert '"Functions"' in p.stdout


# --------------------------------------------------------------------------------------
# Shutdown and restart
# --------------------------------------------------------------------------------------


def test_worker_threads_default_to_half_the_cores_and_can_be_set(server_factory):
    import os
    half = max(1, len(os.sched_getaffinity(0)) // 2)
    default = server_factory()
    default.start()
    assert re.search(rf"worker_threads={half}\b.*server threads|server threads.*worker_threads={half}\b", default.log_text()), default.log_text()
    set_ = server_factory(extra_env={"ALONZO_WORKER_THREADS": "3"})
    set_.start()
    assert re.search(r"worker_threads=3\b", set_.log_text()), set_.log_text()
    # The server works with the count it was given.
    client = set_.client()
    name = unique_name()
    create_function(client, name, python_zip())
    assert client.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200


def test_sigterm_is_graceful_and_state_persists(server_factory):
    srv = server_factory()
    srv.start()
    client = srv.client()
    name = unique_name()
    z = python_zip()
    create_function(client, name, z, Tags={"k": "v"}, Environment={"Variables": {"KEY": "val"}})
    before = client.get_function(FunctionName=name)
    t0 = time.monotonic()
    rc = srv.stop(signal.SIGTERM, timeout=10)
    assert rc == 0, f"SIGTERM should exit 0, got {rc}:\n{srv.log_tail()}"
    assert time.monotonic() - t0 < 10
    assert "panicked" not in srv.log_text()
    srv.start()
    after = srv.client().get_function(FunctionName=name)
    assert after["Configuration"] == before["Configuration"]
    assert after["Tags"] == {"k": "v"}
    assert requests.get(after["Code"]["Location"], timeout=30).content == z


def test_sigterm_under_load_exits_cleanly(server_factory):
    srv = server_factory()
    srv.start()
    stop = threading.Event()
    outcomes = {"ok": 0, "err": 0}

    def hammer():
        client = srv.client(connect_timeout=2, read_timeout=10)
        for _ in range(5000):
            if stop.is_set():
                return
            try:
                client.list_functions(MaxItems=5)
                outcomes["ok"] += 1
            except Exception:  # noqa: BLE001 - connection refused after shutdown is expected
                outcomes["err"] += 1
                if not srv.running:
                    return

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    poll_until(lambda: outcomes["ok"] >= 20, timeout=30, what="traffic to flow")
    rc = srv.stop(signal.SIGTERM, timeout=10)
    stop.set()
    for t in threads:
        t.join(30)
    assert outcomes["ok"] > 0
    assert rc == 0, f"SIGTERM under load should exit 0, got {rc}:\n{srv.log_tail()}"


def test_custom_region_and_account(server_factory):
    srv = server_factory(region="eu-west-1", account="123456789012")
    srv.start()
    client = srv.client()
    name = unique_name()
    resp = create_function(client, name)
    assert resp["FunctionArn"] == f"arn:aws:lambda:eu-west-1:123456789012:function:{name}"
    got = client.get_function(FunctionName=f"arn:aws:lambda:eu-west-1:123456789012:function:{name}")
    assert got["Configuration"]["FunctionName"] == name
    assert client.get_function(FunctionName=f"123456789012:function:{name}")["Configuration"]["FunctionName"] == name


# --------------------------------------------------------------------------------------
# Unimplemented operations and unknown routes
# --------------------------------------------------------------------------------------


def _unimplemented_calls(name: str, zip_bytes: bytes):
    acct_arn = "arn:aws:lambda:us-east-1:000000000000"
    return {
        "Invoke": lambda c: c.invoke(FunctionName=name, Payload=b"{}"),
        "InvokeAsync": lambda c: c.invoke_async(FunctionName=name, InvokeArgs=b"{}"),
        "PublishVersion": lambda c: c.publish_version(FunctionName=name),
        "CreateAlias": lambda c: c.create_alias(FunctionName=name, Name="live", FunctionVersion="$LATEST"),
        "ListAliases": lambda c: c.list_aliases(FunctionName=name),
        "GetAlias": lambda c: c.get_alias(FunctionName=name, Name="live"),
        "PublishLayerVersion": lambda c: c.publish_layer_version(LayerName="alonzo-test-layer", Content={"ZipFile": zip_bytes}),
        "ListLayers": lambda c: c.list_layers(),
        "GetLayerVersionByArn": lambda c: c.get_layer_version_by_arn(Arn=f"{acct_arn}:layer:nope:1"),
        "CreateEventSourceMapping": lambda c: c.create_event_source_mapping(
            FunctionName=name, EventSourceArn="arn:aws:sqs:us-east-1:000000000000:queue"
        ),
        "ListEventSourceMappings": lambda c: c.list_event_source_mappings(),
        "GetEventSourceMapping": lambda c: c.get_event_source_mapping(UUID="00000000-0000-4000-8000-000000000000"),
        "AddPermission": lambda c: c.add_permission(
            FunctionName=name, StatementId="s1", Action="lambda:InvokeFunction", Principal="s3.amazonaws.com"
        ),
        "GetPolicy": lambda c: c.get_policy(FunctionName=name),
        "PutFunctionConcurrency": lambda c: c.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5),
        "CreateFunctionUrlConfig": lambda c: c.create_function_url_config(FunctionName=name, AuthType="NONE"),
        "PutFunctionEventInvokeConfig": lambda c: c.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1),
        "ListProvisionedConcurrencyConfigs": lambda c: c.list_provisioned_concurrency_configs(FunctionName=name),
        "ListCodeSigningConfigs": lambda c: c.list_code_signing_configs(),
        "PutFunctionRecursionConfig": lambda c: c.put_function_recursion_config(FunctionName=name, RecursiveLoop="Allow"),
    }


def test_unimplemented_operations_answer_lambda_errors(server):
    client = server.client(read_timeout=30)
    name = unique_name("other-ops")
    create_function(client, name)
    problems = []
    for op, call in _unimplemented_calls(name, python_zip()).items():
        try:
            resp = call(client)
        except ClientError as e:
            status = http_status(e)
            code = error_code(e)
            headers = {k.lower() for k in e.response["ResponseMetadata"].get("HTTPHeaders", {})}
            if not (400 <= status < 600):
                problems.append(f"{op}: status {status}")
            if not code or code.isdigit():
                problems.append(f"{op}: botocore saw no error code (got {code!r}, status {status})")
            if "x-amzn-errortype" not in headers:
                problems.append(f"{op}: no x-amzn-ErrorType header")
        except Exception as e:  # noqa: BLE001 - anything but a ClientError is a wire-level failure
            problems.append(f"{op}: {type(e).__name__}: {e}")
        else:
            # An implemented operation is fine too, as long as it answered 2xx.
            assert 200 <= resp["ResponseMetadata"]["HTTPStatusCode"] < 300, (op, resp)
    assert not problems, "\n".join(problems)
    # The server is still healthy and the function untouched in the ways that matter.
    assert client.get_function(FunctionName=name)["Configuration"]["FunctionName"] == name


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/2015-03-31/no-such-thing"),
        ("GET", "/2099-01-01/functions"),
        ("PATCH", "/2015-03-31/functions"),
        ("GET", "/"),
        ("POST", "/2015-03-31/functions/x/y/z/w"),
    ],
)
def test_unknown_routes_answer_lambda_errors(server, method, path):
    r = sign_and_send(server, method, path, b"{}" if method in ("POST", "PATCH") else b"")
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert_lambda_error(r)


def test_unsigned_unknown_route_is_not_html(server):
    r = requests.get(f"{server.endpoint}/some/random/path", timeout=10)
    assert 400 <= r.status_code < 500
    assert_lambda_error(r)


# --------------------------------------------------------------------------------------
# `alonzo functions`
# --------------------------------------------------------------------------------------


def _row_for(output: str, name: str) -> str:
    rows = [line for line in output.splitlines() if re.search(rf"(^|\s){re.escape(name)}(\s|$)", line)]
    assert len(rows) == 1, f"expected one row for {name}:\n{output}"
    return rows[0]


def test_alonzo_functions_lists_through_signed_api(server_factory, tmp_path):
    srv = server_factory()
    srv.start()
    client = srv.client()

    p = alonzo("functions", env=srv.env)
    assert p.returncode == 0, p.stderr
    assert "panicked" not in p.stderr

    py, js = unique_name("py"), unique_name("js")
    create_function(client, py)
    create_function(client, js, node_zip(), Runtime="nodejs20.x", Handler="index.handler")
    p = alonzo("functions", env=srv.env)
    assert p.returncode == 0, p.stderr
    assert "python3.11" in _row_for(p.stdout, py)
    assert "nodejs20.x" in _row_for(p.stdout, js)

    # Named profile from a shared credentials file.
    creds = tmp_path / "creds"
    creds.write_text(f"[other]\naws_access_key_id = {srv.access_key}\naws_secret_access_key = {srv.secret_key}\n")
    env = dict(srv.env)
    env.pop("AWS_ACCESS_KEY_ID")
    env.pop("AWS_SECRET_ACCESS_KEY")
    env.update(AWS_PROFILE="other", AWS_SHARED_CREDENTIALS_FILE=str(creds))
    p = alonzo("functions", env=env)
    assert p.returncode == 0, p.stderr
    _row_for(p.stdout, py)

    # Wrong secret: a clean failure, not a panic.
    p = alonzo("functions", env=dict(srv.env, AWS_SECRET_ACCESS_KEY="wrong-wrong-wrong"))
    assert p.returncode != 0
    assert py not in p.stdout
    assert "panicked" not in p.stderr and p.stderr.strip()

    # Server not reachable: a clean failure naming the problem, quickly.
    p = alonzo("functions", env=dict(srv.env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}"), timeout=60)
    assert p.returncode != 0
    assert "panicked" not in p.stderr and p.stderr.strip()


def test_alonzo_functions_defaults(server_factory, tmp_path):
    """No AWS settings at all: http://127.0.0.1:9000 and ./.alonzo/credentials (or ALONZO_DATA_DIR)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 9000))
        except OSError:
            pytest.skip("port 9000 is in use on this machine; cannot test the default endpoint")
    project = tmp_path / "project"
    project.mkdir()
    srv = server_factory(port=9000, credentials=False, data_dir=project / ".alonzo")
    srv.start()
    name = unique_name("dflt")
    create_function(srv.client(), name)

    # Nothing AWS-related set, and an empty HOME so no ~/.aws can be found either.
    home = tmp_path / "home"
    home.mkdir()
    env = clean_base_env()
    env["HOME"] = str(home)
    # ./.alonzo/credentials from the working directory.
    p = alonzo("functions", env=env, cwd=project)
    assert p.returncode == 0, p.stderr
    assert "python3.11" in _row_for(p.stdout, name)
    # ALONZO_DATA_DIR from anywhere.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = alonzo("functions", env=dict(env, ALONZO_DATA_DIR=str(project / ".alonzo")), cwd=elsewhere)
    assert p.returncode == 0, p.stderr
    _row_for(p.stdout, name)
