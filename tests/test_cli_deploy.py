"""`alonzo deploy`: a directory (zipped by the CLI) or a ready zip, created or updated
through the signed API, checked through boto3 like any other function."""

import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import termios
import threading
import zipfile
from pathlib import Path

import pytest
import requests

from alonzo_helpers import ALONZO_BIN, expect_error, make_zip, run, sha256_b64, unique_name

HANDLER = """
import os

def lambda_handler(event, context):
    return {"version": %r, "greeting": os.environ.get("GREETING"), "event": event}
"""

BOOTSTRAP = r"""#!/bin/bash
set -euo pipefail
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  HEADERS="$(mktemp)"
  EVENT=$(curl -sS -LD "$HEADERS" "$API/invocation/next")
  ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  rm -f "$HEADERS"
  curl -sS -X POST "$API/invocation/$ID/response" -d "{\"shell\":true,\"echo\":$EVENT}" >/dev/null
done
"""


def deploy(server, *args, timeout=120):
    return run([str(ALONZO_BIN), "deploy", *map(str, args)], env=server.env, timeout=timeout)


def write_app(root: Path, version: str, extra: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "lambda_function.py").write_text(HANDLER % version)
    for name, data in (extra or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def summary(stdout: str) -> dict:
    """The `key: value` lines of the summary."""
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in stdout.splitlines() if ":" in line)}


def invoke(client, name, event=None, **kw):
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **kw)
    body = json.loads(resp["Payload"].read())
    assert "FunctionError" not in resp, body
    return body


def test_deploy_creates_then_updates_a_python_directory(server, lambda_client, tmp_path):
    name = unique_name("deploy")
    app = write_app(tmp_path / "app", "one")
    created = deploy(server, app, "--name", name, "--runtime", "python3.11")
    assert created.returncode == 0, created.stderr
    assert f"creating function {name} (python3.11)" in created.stderr
    fields = summary(created.stdout)
    config = lambda_client.get_function_configuration(FunctionName=name)
    assert fields["function"] == config["FunctionArn"] and config["FunctionArn"].endswith(f":function:{name}")
    assert fields["code sha256"] == config["CodeSha256"]
    assert fields["state"] == "Active (last update Successful)"
    assert fields["code size"].startswith(f"{config['CodeSize']} bytes")
    assert config["Handler"] == "lambda_function.lambda_handler"
    assert config["Role"] == "arn:aws:iam::000000000000:role/alonzo-deploy"
    assert invoke(lambda_client, name, {"n": 1})["version"] == "one"

    write_app(app, "two")
    updated = deploy(server, app, "--name", name)  # no --runtime needed to update
    assert updated.returncode == 0, updated.stderr
    assert f"updating the code of {name}" in updated.stderr
    assert "updating the configuration" not in updated.stderr
    after = lambda_client.get_function_configuration(FunctionName=name)
    assert after["FunctionArn"] == config["FunctionArn"]
    assert after["CodeSha256"] != config["CodeSha256"] == fields["code sha256"]
    assert summary(updated.stdout)["code sha256"] == after["CodeSha256"]
    assert invoke(lambda_client, name)["version"] == "two"
    versions = lambda_client.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST"]

    # The same tree zips to the same bytes, so a third deploy uploads nothing.
    again = deploy(server, app, "--name", name)
    assert again.returncode == 0, again.stderr
    assert "unchanged (same SHA-256); not uploading" in again.stderr
    assert lambda_client.get_function_configuration(FunctionName=name)["RevisionId"] == after["RevisionId"]


def test_deploy_sets_only_the_configuration_given(server, lambda_client, tmp_path):
    name = unique_name("deploycfg")
    app = write_app(tmp_path / "app", "cfg")
    p = deploy(server, app, "--name", name, "--runtime", "python3.11", "--memory", 256, "--timeout", 7,
               "--env", "GREETING=hello", "SECOND=a=b", "--description", "from the CLI",
               "--role", "arn:aws:iam::123456789012:role/mine")
    assert p.returncode == 0, p.stderr
    config = lambda_client.get_function_configuration(FunctionName=name)
    assert (config["MemorySize"], config["Timeout"], config["Description"]) == (256, 7, "from the CLI")
    assert config["Environment"]["Variables"] == {"GREETING": "hello", "SECOND": "a=b"}
    assert config["Role"] == "arn:aws:iam::123456789012:role/mine"
    assert invoke(lambda_client, name)["greeting"] == "hello"

    # Code unchanged, two flags: only those two fields change.
    p = deploy(server, app, "--name", name, "--memory", 512, "--env", "GREETING=bonjour")
    assert p.returncode == 0, p.stderr
    assert "updating the configuration of" in p.stderr and "MemorySize" in p.stderr
    config = lambda_client.get_function_configuration(FunctionName=name)
    assert (config["MemorySize"], config["Timeout"], config["Description"]) == (512, 7, "from the CLI")
    assert config["Environment"]["Variables"] == {"GREETING": "bonjour"}
    assert (config["State"], config["LastUpdateStatus"]) == ("Active", "Successful")
    assert invoke(lambda_client, name)["greeting"] == "bonjour"


def test_deploy_provided_runtime_keeps_the_bootstrap_executable(server, lambda_client, tmp_path):
    if not (Path("/usr/bin/curl").exists() and Path("/bin/bash").exists()):
        pytest.skip("needs /usr/bin/curl and /bin/bash on the host (they are bound into the sandbox)")
    name = unique_name("deploysh")
    app = tmp_path / "shell"
    app.mkdir()
    (app / "bootstrap").write_text(BOOTSTRAP)
    (app / "bootstrap").chmod(0o755)
    p = deploy(server, app, "--name", name, "--runtime", "provided.al2023", "--timeout", 9)
    assert p.returncode == 0, p.stderr
    assert lambda_client.get_function_configuration(FunctionName=name)["Handler"] == "bootstrap"
    assert invoke(lambda_client, name, {"k": "v"}) == {"shell": True, "echo": {"k": "v"}}


def test_deploy_a_ready_zip_as_it_is(server, lambda_client, tmp_path):
    name = unique_name("deployzip")
    data = make_zip([("app.py", "def handler(event, context):\n    return {'zipped': True}\n")])
    package = tmp_path / "function.zip"
    package.write_bytes(data)
    p = deploy(server, package, "--name", name, "--runtime", "python3.11", "--handler", "app.handler")
    assert p.returncode == 0, p.stderr
    assert summary(p.stdout)["code sha256"] == sha256_b64(data)
    assert lambda_client.get_function_configuration(FunctionName=name)["CodeSize"] == len(data)
    assert invoke(lambda_client, name) == {"zipped": True}


def test_deploy_publish_returns_a_version(server, lambda_client, tmp_path):
    name = unique_name("deploypub")
    app = write_app(tmp_path / "app", "v1")
    first = deploy(server, app, "--name", name, "--runtime", "python3.11", "--publish")
    assert first.returncode == 0, first.stderr
    assert summary(first.stdout)["version"] == "1"
    assert summary(first.stdout)["function"].endswith(f":function:{name}:1")

    write_app(app, "v2")
    second = deploy(server, app, "--name", name, "--publish", "--json")
    assert second.returncode == 0, second.stderr
    config = json.loads(second.stdout)
    assert config["Version"] == "2" and config["State"] == "Active"
    assert invoke(lambda_client, name, Qualifier="1")["version"] == "v1"
    assert invoke(lambda_client, name, Qualifier="2")["version"] == "v2"


def test_deploy_refuses_bad_input_clearly(server, lambda_client, tmp_path):
    name = unique_name("deploybad")
    missing = deploy(server, tmp_path / "nope", "--name", name, "--runtime", "python3.11")
    assert missing.returncode == 2 and "nope: no such file or directory" in missing.stderr

    text = tmp_path / "notes.txt"
    text.write_text("not a zip")
    not_zip = deploy(server, text, "--name", name, "--runtime", "python3.11")
    assert not_zip.returncode == 2 and "notes.txt: not a zip file" in not_zip.stderr

    (tmp_path / "empty" / "sub").mkdir(parents=True)
    empty = deploy(server, tmp_path / "empty", "--name", name, "--runtime", "python3.11")
    assert empty.returncode == 2 and "nothing to deploy" in empty.stderr

    leaky = write_app(tmp_path / "leaky", "x")
    (leaky / "passwd").symlink_to("/etc/passwd")
    (leaky / "up").symlink_to("../notes.txt")
    outside = deploy(server, leaky, "--name", name, "--runtime", "python3.11")
    assert outside.returncode == 2 and "symlink to" in outside.stderr, outside.stderr

    app = write_app(tmp_path / "app", "x")
    no_runtime = deploy(server, app, "--name", name)
    assert no_runtime.returncode == 2 and "give --runtime to create it" in no_runtime.stderr

    bad_env = deploy(server, app, "--name", name, "--runtime", "python3.11", "--env", "NOEQUALS")
    assert bad_env.returncode == 2 and "is not KEY=VALUE" in bad_env.stderr

    unknown = deploy(server, app, "--name", name, "--runtime", "cobol85")
    assert unknown.returncode == 1
    assert "InvalidParameterValueException: Value cobol85 at 'runtime' failed to satisfy constraint" in unknown.stderr

    too_big = deploy(server, app, "--name", name, "--runtime", "python3.11", "--memory", 20000)
    assert too_big.returncode == 1 and "InvalidParameterValueException" in too_big.stderr
    assert "MemorySize" in too_big.stderr

    expect_error("ResourceNotFoundException", lambda_client.get_function, FunctionName=name)


def test_deploy_too_large_package_shows_the_servers_limit(server, tmp_path):
    name = unique_name("deployhuge")
    # 53 MB that do not compress: over Lambda's 50 MB direct-upload limit once zipped.
    app = write_app(tmp_path / "app", "huge", {"blob.bin": os.urandom(53 << 20)})
    p = deploy(server, app, "--name", name, "--runtime", "python3.11")
    assert p.returncode == 1, p.stderr
    assert "RequestEntityTooLargeException: Request must be smaller than" in p.stderr
    assert re.search(r"the package is 53\.\d\d MiB zipped \(70\.\d\d MiB as base64", p.stderr), p.stderr


def big_app(root: Path) -> Path:
    # 5 MB of random bytes do not compress: the upload is about 6.7 MB of base64.
    return write_app(root, "big", {"data/blob.bin": os.urandom(5 << 20)})


def run_on_pty(cmd, env, timeout=120):
    """Runs `cmd` with standard error on a pseudo-terminal (100x24); returns the exit code,
    standard output and everything written to the terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    chunks: list[bytes] = []

    def drain():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO once the last writer has closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                              timeout=timeout)
    finally:
        os.close(slave)
    reader.join(10)
    os.close(master)
    return proc.returncode, proc.stdout.decode(), b"".join(chunks).decode(errors="replace")


def test_deploy_large_package_shows_progress_only_on_a_terminal(server, lambda_client, tmp_path):
    name = unique_name("deploybig")
    app = big_app(tmp_path / "app")
    env = dict(server.env, TERM="xterm-256color")
    code, stdout, terminal = run_on_pty([str(ALONZO_BIN), "deploy", str(app), "--name", name, "--runtime",
                                         "python3.11"], env)
    assert code == 0, terminal
    assert re.search(r"\b100%", terminal), terminal
    assert re.search(r"\d+(\.\d+)? MiB/\d+(\.\d+)? MiB", terminal), terminal
    config = lambda_client.get_function_configuration(FunctionName=name)
    assert config["CodeSize"] > 5 << 20 and summary(stdout)["code sha256"] == config["CodeSha256"]
    assert invoke(lambda_client, name)["version"] == "big"

    # Without a terminal: plain status lines, no bar, no control characters.
    (app / "data" / "blob.bin").write_bytes(os.urandom(5 << 20))
    plain = deploy(server, app, "--name", name)
    assert plain.returncode == 0, plain.stderr
    assert re.search(r"uploading \d+\.\d+ MiB", plain.stderr), plain.stderr
    assert "%" not in plain.stderr and "\r" not in plain.stderr and "\x1b" not in plain.stderr
    assert lambda_client.get_function_configuration(FunctionName=name)["CodeSha256"] != config["CodeSha256"]


def test_deployed_zip_is_deterministic_and_keeps_modes(server, lambda_client, tmp_path):
    """The package the server stored (downloaded from `Code.Location`) has the tree's files
    with normalised modes and fixed timestamps, sorted."""
    name = unique_name("deploymodes")
    app = write_app(tmp_path / "app", "m", {"bin/tool": b"#!/bin/sh\n", "lib/a.py": b"A = 1\n"})
    (app / "bin" / "tool").chmod(0o700)
    (app / ".git").mkdir()
    (app / ".git" / "HEAD").write_text("ref: x\n")
    (app / "alias.py").symlink_to("lib/a.py")
    p = deploy(server, app, "--name", name, "--runtime", "python3.11")
    assert p.returncode == 0, p.stderr
    assert "skipped .git/" in p.stderr
    location = lambda_client.get_function(FunctionName=name)["Code"]["Location"]
    data = requests.get(location, timeout=10).content
    assert sha256_b64(data) == summary(p.stdout)["code sha256"]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == ["alias.py", "bin/", "bin/tool", "lambda_function.py", "lib/", "lib/a.py"]
        modes = {i.filename: i.external_attr >> 16 for i in infos}
        assert modes["bin/tool"] == 0o100755 and modes["lambda_function.py"] == 0o100644
        assert modes["alias.py"] & 0o170000 == 0o120000 and zf.read("alias.py") == b"lib/a.py"
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
