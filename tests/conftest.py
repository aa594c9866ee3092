"""Fixtures for the black-box suite: a running `alonzo serve`, clients, and log capture."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from alonzo_helpers import ALL_SERVERS, AlonzoServer, clean_base_env

# Keep the developer's AWS configuration out of this test process: boto3 would otherwise
# read ~/.aws, AWS_PROFILE, AWS_ENDPOINT_URL, proxies, or try the instance metadata service.
_ISOLATION_DIR = Path(tempfile.mkdtemp(prefix="alonzo-tests-awsenv-"))
(_ISOLATION_DIR / "config").touch()
(_ISOLATION_DIR / "credentials").touch()
for _k in list(os.environ):
    if _k.startswith(("AWS_", "ALONZO_", "TF_")) or _k.lower() in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}:
        del os.environ[_k]
os.environ.update(
    AWS_CONFIG_FILE=str(_ISOLATION_DIR / "config"),
    AWS_SHARED_CREDENTIALS_FILE=str(_ISOLATION_DIR / "credentials"),
    AWS_EC2_METADATA_DISABLED="true",
    NO_PROXY="127.0.0.1,localhost",
    no_proxy="127.0.0.1,localhost",
)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The shared server for tests that only add (uniquely named) functions."""
    srv = AlonzoServer(tmp_path_factory.mktemp("alonzo-shared"), owner="session")
    srv.start()
    yield srv
    srv.close()


@pytest.fixture
def server_factory(tmp_path, request):
    """Builds private servers (not started) for tests that restart, kill or reconfigure."""
    made: list[AlonzoServer] = []

    def make(**kw) -> AlonzoServer:
        root = tmp_path / f"srv{len(made)}"
        srv = AlonzoServer(root, owner=request.node.nodeid, **kw)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.close()


@pytest.fixture(scope="session")
def lambda_client(server):
    """boto3 Lambda client with no retries (errors surface on the first attempt)."""
    return server.client()


@pytest.fixture(scope="session")
def raw_client(server):
    """Like `lambda_client` but without botocore's client-side parameter validation, so
    out-of-range values reach the server."""
    return server.client(validate=False)


@pytest.fixture
def subprocess_env(server):
    return dict(server.env)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for srv in ALL_SERVERS:
            if srv.owner == item.nodeid or (srv.owner == "session" and srv.starts):
                rep.sections.append((f"alonzo log ({srv.root}, port {srv.port})", srv.log_tail()))


__all__ = ["clean_base_env"]
