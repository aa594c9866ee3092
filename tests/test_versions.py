"""Published function versions (PublishVersion, ListVersionsByFunction, qualifiers) and
RevisionId optimistic locking.

Every test makes its own uniquely named functions on the shared server. A version is an
immutable snapshot of `$LATEST`'s code and configuration; the tests publish, change
`$LATEST`, and check through the control plane and by invoking that each version keeps
what it had.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests
from botocore.exceptions import ClientError

from alonzo_helpers import (
    expect_error,
    invoke_ok,

    ACCOUNT,
    UUID_RE,
    big_moderate_zip,
    comparable_config,
    create_function,
    error_code,
    http_status,
    list_all_functions,
    make_zip,
    poll_until,
    sha256_b64,
    unique_name,
    wait_updated,
)

# --------------------------------------------------------------------------------------
# Function code and helpers
# --------------------------------------------------------------------------------------

APP = r'''
import os

TAG = "__TAG__"


def handler(event, context):
    return {
        "tag": TAG,
        "stage": os.environ.get("STAGE"),
        "function_version": context.function_version,
        "invoked_arn": context.invoked_function_arn,
        "env_version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
        "memory": os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        "log_stream": context.log_stream_name,
    }
'''

INVALID_PARAM = {"InvalidParameterValueException", "ValidationException"}


def app_zip(tag: str) -> bytes:
    return make_zip([("app.py", APP.replace("__TAG__", tag))])


def new_fn(client, tag: str = "v1", prefix: str = "ver", **overrides) -> str:
    name = unique_name(prefix)
    overrides.setdefault("Timeout", 10)
    create_function(client, name, app_zip(tag), **overrides)
    return name


def wait_version_active(client, name: str, version: str, timeout: float = 30.0) -> dict:
    def check():
        cfg = client.get_function_configuration(FunctionName=name, Qualifier=version)
        assert cfg.get("State") != "Failed", f"version {version} went to Failed: {cfg}"
        return cfg if cfg.get("State") == "Active" else None

    return poll_until(check, timeout, what=f"{name}:{version} to become Active")


def publish(client, name: str, **kw) -> dict:
    resp = client.publish_version(FunctionName=name, **kw)
    assert http_status(resp) == 201, resp["ResponseMetadata"]
    wait_version_active(client, name, resp["Version"])
    return resp


def set_code(client, name: str, tag: str) -> bytes:
    z = app_zip(tag)
    client.update_function_code(FunctionName=name, ZipFile=z)
    wait_updated(client, name)
    return z


def set_config(client, name: str, **kw) -> dict:
    client.update_function_configuration(FunctionName=name, **kw)
    return wait_updated(client, name)


def all_versions(client, name: str, **kw) -> list[dict]:
    out = []
    for page in client.get_paginator("list_versions_by_function").paginate(FunctionName=name, **kw):
        out.extend(page["Versions"])
    return out


# --------------------------------------------------------------------------------------
# PublishVersion
# --------------------------------------------------------------------------------------


def test_publish_version_snapshots_latest(lambda_client, server):
    z = app_zip("v1")
    name = unique_name("pub")
    create_function(lambda_client, name, z, Timeout=10, MemorySize=192, Description="the function",
                    Environment={"Variables": {"STAGE": "one"}})
    latest = lambda_client.get_function_configuration(FunctionName=name)
    resp = lambda_client.publish_version(FunctionName=name, Description="first release")
    assert http_status(resp) == 201
    assert resp["Version"] == "1"
    assert resp["FunctionName"] == name
    assert resp["FunctionArn"] == server.function_arn(name) + ":1"
    assert resp["CodeSha256"] == sha256_b64(z) == latest["CodeSha256"]
    assert resp["CodeSize"] == len(z)
    assert resp["Description"] == "first release"
    for k in ("Runtime", "Handler", "Role", "MemorySize", "Timeout"):
        assert resp[k] == latest[k], k
    assert resp["Environment"]["Variables"] == {"STAGE": "one"}
    assert UUID_RE.match(resp["RevisionId"]), resp["RevisionId"]
    assert resp.get("State") in ("Active", "Pending"), resp.get("State")

    cfg = wait_version_active(lambda_client, name, "1")
    assert cfg["Version"] == "1"
    assert cfg["FunctionArn"] == server.function_arn(name) + ":1"
    assert cfg["CodeSha256"] == sha256_b64(z)
    assert cfg["MemorySize"] == 192
    assert cfg["Description"] == "first release"
    # $LATEST is still $LATEST, unqualified.
    after = lambda_client.get_function_configuration(FunctionName=name)
    assert after["Version"] == "$LATEST"
    assert after["FunctionArn"] == server.function_arn(name)
    assert after["Description"] == "the function"


def test_publish_with_nothing_changed_returns_the_last_version(lambda_client):
    name = new_fn(lambda_client)
    first = publish(lambda_client, name)
    assert first["Version"] == "1"
    again = lambda_client.publish_version(FunctionName=name)
    assert again["Version"] == "1", f"publishing an unchanged $LATEST made version {again['Version']}"
    assert again["CodeSha256"] == first["CodeSha256"]
    assert [v["Version"] for v in all_versions(lambda_client, name)] == ["$LATEST", "1"]

    # A configuration change is a change.
    set_config(lambda_client, name, MemorySize=256)
    second = publish(lambda_client, name)
    assert second["Version"] == "2"
    assert second["MemorySize"] == 256
    assert lambda_client.publish_version(FunctionName=name)["Version"] == "2"

    # So is new code.
    z3 = set_code(lambda_client, name, "v3")
    third = publish(lambda_client, name)
    assert third["Version"] == "3"
    assert third["CodeSha256"] == sha256_b64(z3)
    assert [v["Version"] for v in all_versions(lambda_client, name)] == ["$LATEST", "1", "2", "3"]


def test_version_numbers_are_never_reused(lambda_client):
    name = new_fn(lambda_client)
    assert publish(lambda_client, name)["Version"] == "1"
    set_code(lambda_client, name, "v2")
    assert publish(lambda_client, name)["Version"] == "2"

    resp = lambda_client.delete_function(FunctionName=name, Qualifier="2")
    assert http_status(resp) in (200, 204)
    expect_error("ResourceNotFoundException", lambda_client.get_function_configuration, FunctionName=name, Qualifier="2", status=404)

    set_code(lambda_client, name, "v3")
    third = publish(lambda_client, name)
    assert third["Version"] == "3", f"version number {third['Version']} after deleting version 2 (numbers are never reused)"

    lambda_client.delete_function(FunctionName=name, Qualifier="3")
    lambda_client.delete_function(FunctionName=name, Qualifier="1")
    assert [v["Version"] for v in all_versions(lambda_client, name)] == ["$LATEST"]
    # Publishing the very code of deleted version 3 again still gets a fresh number.
    fourth = publish(lambda_client, name)
    assert fourth["Version"] == "4", fourth["Version"]
    set_code(lambda_client, name, "v5")
    assert publish(lambda_client, name)["Version"] == "5"
    assert [v["Version"] for v in all_versions(lambda_client, name)] == ["$LATEST", "4", "5"]


def test_publish_code_sha256_precondition(lambda_client):
    z = app_zip("sha")
    name = unique_name("sha")
    create_function(lambda_client, name, z)
    wrong = sha256_b64(b"something else")
    err = expect_error({"PreconditionFailedException"}, lambda_client.publish_version, FunctionName=name, CodeSha256=wrong)
    assert http_status(err) == 412, err.response
    assert [v["Version"] for v in all_versions(lambda_client, name)] == ["$LATEST"], "a refused publish created a version"
    ok = publish(lambda_client, name, CodeSha256=sha256_b64(z))
    assert ok["Version"] == "1"


def test_publish_revision_id_precondition(lambda_client):
    name = new_fn(lambda_client)
    stale = lambda_client.get_function_configuration(FunctionName=name)["RevisionId"]
    current = set_config(lambda_client, name, Description="changed")["RevisionId"]
    assert current != stale
    err = expect_error("PreconditionFailedException", lambda_client.publish_version, FunctionName=name, RevisionId=stale)
    assert http_status(err) == 412
    assert [v["Version"] for v in all_versions(lambda_client, name)] == ["$LATEST"], "a refused publish created a version"
    ok = publish(lambda_client, name, RevisionId=current)
    assert ok["Version"] == "1"
    assert ok["Description"] == "changed"


def test_publish_while_update_in_progress(lambda_client):
    """Publishing right after an UpdateFunctionCode either is refused (the update is still in
    progress) or publishes the new code; it never snapshots the old or a half-made state."""
    name = new_fn(lambda_client, MemorySize=256)
    publish(lambda_client, name)
    outcomes = []
    for i in range(3):
        z = big_moderate_zip(40 << 20, entry_size=4 << 20) if i == 0 else app_zip(f"busy-{i}-{uuid.uuid4().hex}")
        upd = lambda_client.update_function_code(FunctionName=name, ZipFile=z)
        busy = upd.get("LastUpdateStatus") == "InProgress"
        try:
            resp = lambda_client.publish_version(FunctionName=name)
        except ClientError as e:
            assert error_code(e) == "ResourceConflictException", e.response
            assert http_status(e) == 409
            outcomes.append("conflict")
        else:
            assert resp["CodeSha256"] == sha256_b64(z), "PublishVersion during an update snapshotted the old code"
            assert resp["Version"] != "1"
            outcomes.append(f"published {resp['Version']} (update was {'InProgress' if busy else 'done'})")
        wait_updated(lambda_client, name)
    print("outcomes:", outcomes)
    # After the update settled, publishing works and carries the final code.
    final = lambda_client.get_function_configuration(FunctionName=name)
    ver = publish(lambda_client, name)
    assert ver["CodeSha256"] == final["CodeSha256"]
    assert invoke_ok(lambda_client, name, Qualifier=ver["Version"])[0]["ExecutedVersion"] == ver["Version"]

    # The same right after CreateFunction, while the function may still be Pending.
    other = unique_name("busyc")
    z = big_moderate_zip(40 << 20, entry_size=4 << 20)
    lambda_client.create_function(FunctionName=other, Runtime="python3.11", Role=f"arn:aws:iam::{ACCOUNT}:role/alonzo-test-role",
                                  Handler="app.handler", Code={"ZipFile": z}, MemorySize=256)
    try:
        resp = lambda_client.publish_version(FunctionName=other)
    except ClientError as e:
        assert error_code(e) == "ResourceConflictException", e.response
    else:
        assert resp["Version"] == "1" and resp["CodeSha256"] == sha256_b64(z)
        wait_version_active(lambda_client, other, "1")
        assert invoke_ok(lambda_client, other, {"x": 1}, Qualifier="1")[1] == {"x": 1}


def test_publish_unknown_function(lambda_client):
    expect_error("ResourceNotFoundException", lambda_client.publish_version, FunctionName=unique_name("nope"), status=404)
    expect_error("ResourceNotFoundException", lambda_client.list_versions_by_function, FunctionName=unique_name("nope"), status=404)


# --------------------------------------------------------------------------------------
# Publish as part of CreateFunction / UpdateFunctionCode
# --------------------------------------------------------------------------------------


def test_create_function_with_publish(lambda_client, server):
    name = unique_name("cpub")
    z = app_zip("created")
    resp = lambda_client.create_function(
        FunctionName=name, Runtime="python3.11", Role=f"arn:aws:iam::{ACCOUNT}:role/alonzo-test-role",
        Handler="app.handler", Code={"ZipFile": z}, Publish=True, Timeout=10,
    )
    assert http_status(resp) == 201
    assert resp["Version"] == "1", f"CreateFunction(Publish=True) answered with version {resp.get('Version')}"
    assert resp["FunctionArn"] == server.function_arn(name) + ":1"
    assert resp["CodeSha256"] == sha256_b64(z)
    wait_version_active(lambda_client, name, "1")
    versions = all_versions(lambda_client, name)
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]
    _, out = invoke_ok(lambda_client, name, Qualifier="1")
    assert out["tag"] == "created" and out["function_version"] == "1"


def test_update_function_code_with_publish(lambda_client, server):
    name = new_fn(lambda_client)
    assert publish(lambda_client, name)["Version"] == "1"
    z2 = app_zip("v2")
    resp = lambda_client.update_function_code(FunctionName=name, ZipFile=z2, Publish=True)
    assert resp["Version"] == "2", f"UpdateFunctionCode(Publish=True) answered with version {resp.get('Version')}"
    assert resp["FunctionArn"] == server.function_arn(name) + ":2"
    assert resp["CodeSha256"] == sha256_b64(z2)
    wait_updated(lambda_client, name)
    cfg = wait_version_active(lambda_client, name, "2")
    assert cfg["CodeSha256"] == sha256_b64(z2)
    assert lambda_client.get_function_configuration(FunctionName=name)["CodeSha256"] == sha256_b64(z2)
    _, out = invoke_ok(lambda_client, name, Qualifier="2")
    assert out["tag"] == "v2"
    _, out = invoke_ok(lambda_client, name, Qualifier="1")
    assert out["tag"] == "v1"


# --------------------------------------------------------------------------------------
# ListVersionsByFunction
# --------------------------------------------------------------------------------------


def test_list_versions_order_arns_and_pagination(lambda_client, server):
    name = new_fn(lambda_client, tag="t0")
    zips = {}
    for i in range(1, 5):
        zips[str(i)] = set_code(lambda_client, name, f"t{i}")
        assert publish(lambda_client, name)["Version"] == str(i)
    first = lambda_client.list_versions_by_function(FunctionName=name)
    versions = first["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2", "3", "4"]
    assert versions[0]["FunctionArn"] == server.function_arn(name) + ":$LATEST"
    for v in versions[1:]:
        assert v["FunctionArn"] == server.function_arn(name) + ":" + v["Version"]
        assert v["CodeSha256"] == sha256_b64(zips[v["Version"]]), v["Version"]
        assert v["FunctionName"] == name
    assert versions[0]["CodeSha256"] == sha256_b64(zips["4"])

    # Marker pagination with MaxItems.
    pages, marker = [], None
    for _ in range(10):
        kw = {"MaxItems": 2}
        if marker:
            kw["Marker"] = marker
        page = lambda_client.list_versions_by_function(FunctionName=name, **kw)
        assert len(page["Versions"]) <= 2
        pages.append([v["Version"] for v in page["Versions"]])
        marker = page.get("NextMarker")
        if not marker:
            break
    assert [v for p in pages for v in p] == ["$LATEST", "1", "2", "3", "4"], pages
    assert len(pages) >= 3, f"MaxItems=2 over 5 versions gave pages {pages}"
    # The paginator agrees.
    assert [v["Version"] for v in all_versions(lambda_client, name, PaginationConfig={"PageSize": 1})] == ["$LATEST", "1", "2", "3", "4"]


def test_list_functions_lists_each_function_once(lambda_client, server):
    name = new_fn(lambda_client)
    publish(lambda_client, name)
    set_code(lambda_client, name, "v2")
    publish(lambda_client, name)
    mine = [f for f in list_all_functions(lambda_client) if f["FunctionName"] == name]
    assert len(mine) == 1, f"ListFunctions lists the function {len(mine)} times: {[f.get('Version') for f in mine]}"
    assert mine[0]["Version"] == "$LATEST"
    assert mine[0]["FunctionArn"] == server.function_arn(name)


# --------------------------------------------------------------------------------------
# Qualified reads
# --------------------------------------------------------------------------------------


def test_get_version_by_each_qualifier_form(lambda_client, server):
    z1 = app_zip("v1")
    name = unique_name("qual")
    create_function(lambda_client, name, z1, MemorySize=160)
    publish(lambda_client, name)
    z2 = set_code(lambda_client, name, "v2")
    set_config(lambda_client, name, MemorySize=320)
    arn = server.function_arn(name)
    forms = [
        {"FunctionName": name, "Qualifier": "1"},
        {"FunctionName": f"{name}:1"},
        {"FunctionName": f"{arn}:1"},
        {"FunctionName": arn, "Qualifier": "1"},
        {"FunctionName": f"{ACCOUNT}:function:{name}:1"},
    ]
    for kw in forms:
        cfg = lambda_client.get_function_configuration(**kw)
        assert cfg["Version"] == "1", kw
        assert cfg["FunctionArn"] == arn + ":1", (kw, cfg["FunctionArn"])
        assert cfg["CodeSha256"] == sha256_b64(z1), kw
        assert cfg["MemorySize"] == 160, kw
        full = lambda_client.get_function(**kw)
        assert full["Configuration"]["Version"] == "1", kw
        assert full["Configuration"]["CodeSha256"] == sha256_b64(z1), kw
    # The version's package downloads as the bytes that were published.
    loc = lambda_client.get_function(FunctionName=name, Qualifier="1")["Code"]["Location"]
    assert requests.get(loc, timeout=30).content == z1
    loc = lambda_client.get_function(FunctionName=name)["Code"]["Location"]
    assert requests.get(loc, timeout=30).content == z2
    # $LATEST by name is the current code and configuration.
    latest = lambda_client.get_function_configuration(FunctionName=name, Qualifier="$LATEST")
    assert latest["Version"] == "$LATEST"
    assert latest["CodeSha256"] == sha256_b64(z2) and latest["MemorySize"] == 320


def test_unknown_and_conflicting_qualifiers(lambda_client, server):
    name = new_fn(lambda_client)
    publish(lambda_client, name)
    set_code(lambda_client, name, "v2")
    publish(lambda_client, name)
    for kw in ({"FunctionName": name, "Qualifier": "99"}, {"FunctionName": f"{name}:99"},
               {"FunctionName": f"{server.function_arn(name)}:99"}):
        expect_error("ResourceNotFoundException", lambda_client.get_function_configuration, status=404, **kw)
        expect_error("ResourceNotFoundException", lambda_client.get_function, status=404, **kw)
    err = expect_error("ResourceNotFoundException", lambda_client.invoke, FunctionName=name, Qualifier="99", Payload=b"{}")
    assert http_status(err) == 404
    # Two different qualifiers in one request.
    for fn in (lambda_client.get_function_configuration, lambda_client.get_function):
        err = expect_error(INVALID_PARAM, fn, FunctionName=f"{name}:1", Qualifier="2")
        assert http_status(err) == 400
    err = expect_error(INVALID_PARAM, lambda_client.invoke, FunctionName=f"{name}:1", Qualifier="2", Payload=b"{}")
    assert http_status(err) == 400


# --------------------------------------------------------------------------------------
# DeleteFunction with a qualifier
# --------------------------------------------------------------------------------------


def test_delete_one_version(lambda_client):
    name = new_fn(lambda_client)
    publish(lambda_client, name)
    set_code(lambda_client, name, "v2")
    publish(lambda_client, name)
    resp = lambda_client.delete_function(FunctionName=name, Qualifier="1")
    assert http_status(resp) in (200, 204)
    expect_error("ResourceNotFoundException", lambda_client.get_function, FunctionName=name, Qualifier="1", status=404)
    expect_error("ResourceNotFoundException", lambda_client.invoke, FunctionName=name, Qualifier="1", Payload=b"{}", status=404)
    expect_error("ResourceNotFoundException", lambda_client.delete_function, FunctionName=name, Qualifier="1", status=404)
    assert [v["Version"] for v in all_versions(lambda_client, name)] == ["$LATEST", "2"]
    # The rest of the function is untouched.
    assert invoke_ok(lambda_client, name, Qualifier="2")[1]["tag"] == "v2"
    assert invoke_ok(lambda_client, name)[1]["tag"] == "v2"
    assert lambda_client.get_function_configuration(FunctionName=name)["Version"] == "$LATEST"


def test_latest_cannot_be_deleted_by_qualifier(lambda_client):
    name = new_fn(lambda_client)
    publish(lambda_client, name)
    err = expect_error(INVALID_PARAM | {"ResourceConflictException"}, lambda_client.delete_function, FunctionName=name, Qualifier="$LATEST")
    assert 400 <= http_status(err) < 500
    assert lambda_client.get_function_configuration(FunctionName=name)["Version"] == "$LATEST"
    assert [v["Version"] for v in all_versions(lambda_client, name)] == ["$LATEST", "1"]
    invoke_ok(lambda_client, name)


def test_delete_function_removes_all_versions(lambda_client):
    name = new_fn(lambda_client)
    publish(lambda_client, name)
    set_code(lambda_client, name, "v2")
    publish(lambda_client, name)
    lambda_client.delete_function(FunctionName=name)
    for q in ("1", "2"):
        expect_error("ResourceNotFoundException", lambda_client.get_function_configuration, FunctionName=name, Qualifier=q)
    # A new function of the same name has none of the old versions.
    create_function(lambda_client, name, app_zip("reborn"))
    assert [v["Version"] for v in all_versions(lambda_client, name)] == ["$LATEST"]
    expect_error("ResourceNotFoundException", lambda_client.get_function_configuration, FunctionName=name, Qualifier="1")
    expect_error("ResourceNotFoundException", lambda_client.invoke, FunctionName=name, Qualifier="2", Payload=b"{}")


# --------------------------------------------------------------------------------------
# A version keeps its code and configuration
# --------------------------------------------------------------------------------------


def test_published_version_keeps_code_and_environment(lambda_client, server):
    name = new_fn(lambda_client, tag="v1", MemorySize=192, Environment={"Variables": {"STAGE": "one"}})
    publish(lambda_client, name)
    v1_config = comparable_config(lambda_client.get_function_configuration(FunctionName=name, Qualifier="1"))

    client = lambda_client
    client.update_function_code(FunctionName=name, ZipFile=app_zip("v2"))
    wait_updated(client, name)
    set_config(client, name, MemorySize=256, Environment={"Variables": {"STAGE": "two"}})

    arn = server.function_arn(name)
    # Alternate so that a warm environment of one version can never serve the other.
    for _ in range(2):
        resp, out = invoke_ok(client, name, Qualifier="1")
        assert out["tag"] == "v1", f"version 1 ran {out['tag']!r} code after $LATEST was updated"
        assert out["stage"] == "one", "version 1 saw $LATEST's environment"
        assert out["memory"] == "192"
        assert resp["ExecutedVersion"] == "1"
        assert resp["ResponseMetadata"]["HTTPHeaders"].get("x-amz-executed-version") == "1"
        assert out["function_version"] == "1"
        assert out["env_version"] == "1"
        assert out["invoked_arn"] == arn + ":1"

        resp, out = invoke_ok(client, name)
        assert (out["tag"], out["stage"], out["memory"]) == ("v2", "two", "256")
        assert resp["ExecutedVersion"] == "$LATEST"
        assert out["function_version"] == "$LATEST"
        assert out["invoked_arn"] == arn

    for ref in (f"{name}:1", f"{arn}:1"):
        resp, out = invoke_ok(client, ref)
        assert out["tag"] == "v1" and resp["ExecutedVersion"] == "1", ref
        assert out["invoked_arn"] == arn + ":1", (ref, out["invoked_arn"])

    resp, out = invoke_ok(client, name, Qualifier="$LATEST")
    assert out["tag"] == "v2" and resp["ExecutedVersion"] == "$LATEST"

    after = comparable_config(client.get_function_configuration(FunctionName=name, Qualifier="1"))
    assert after == v1_config, "updating $LATEST changed version 1's configuration"

    # Publishing now snapshots the new state, and version 1 is still what it was.
    v2 = publish(client, name)
    assert v2["Version"] == "2" and v2["Environment"]["Variables"] == {"STAGE": "two"}
    resp, out = invoke_ok(client, name, Qualifier="2")
    assert (out["tag"], out["stage"], resp["ExecutedVersion"], out["function_version"]) == ("v2", "two", "2", "2")
    resp, out = invoke_ok(client, name, Qualifier="1")
    assert (out["tag"], out["stage"], resp["ExecutedVersion"]) == ("v1", "one", "1")


def test_version_configuration_is_immutable(lambda_client):
    name = new_fn(lambda_client, Description="d0", Timeout=5, Environment={"Variables": {"A": "1"}})
    publish(lambda_client, name)
    before = comparable_config(lambda_client.get_function_configuration(FunctionName=name, Qualifier="1"))
    before_full = lambda_client.get_function(FunctionName=name, Qualifier="1")["Configuration"]
    set_config(lambda_client, name, Description="d1", Timeout=9, MemorySize=512, Handler="app.other",
               Environment={"Variables": {"A": "2", "B": "3"}})
    set_code(lambda_client, name, "changed")
    lambda_client.tag_resource(Resource=lambda_client.get_function_configuration(FunctionName=name)["FunctionArn"], Tags={"k": "v"})
    after = comparable_config(lambda_client.get_function_configuration(FunctionName=name, Qualifier="1"))
    assert after == before, {k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert lambda_client.get_function(FunctionName=name, Qualifier="1")["Configuration"] == before_full
    listed = {v["Version"]: v for v in all_versions(lambda_client, name)}
    for k in ("CodeSha256", "Description", "Timeout", "MemorySize", "Handler", "Environment", "RevisionId"):
        assert listed["1"].get(k) == before.get(k), k
    assert listed["$LATEST"]["Timeout"] == 9


def test_version_invocation_logs_name_the_version(lambda_client):
    name = new_fn(lambda_client)
    publish(lambda_client, name)
    resp, out = invoke_ok(lambda_client, name, Qualifier="1", LogType="Tail")
    log = base64.b64decode(resp["LogResult"]).decode()
    assert re.search(r"START RequestId: \S+ Version: 1\b", log), log
    assert re.match(r"^\d{4}/\d\d/\d\d/\[1\][0-9a-f]{32}$", out["log_stream"]), out["log_stream"]


# --------------------------------------------------------------------------------------
# RevisionId optimistic locking on $LATEST
# --------------------------------------------------------------------------------------


def test_stale_revision_id_on_updates(lambda_client):
    name = new_fn(lambda_client)
    stale = lambda_client.get_function_configuration(FunctionName=name)["RevisionId"]
    current = set_config(lambda_client, name, Description="first")["RevisionId"]
    err = expect_error("PreconditionFailedException", lambda_client.update_function_configuration,
                       FunctionName=name, Description="lost", RevisionId=stale)
    assert http_status(err) == 412
    err = expect_error("PreconditionFailedException", lambda_client.update_function_code,
                       FunctionName=name, ZipFile=app_zip("lost"), RevisionId=stale)
    assert http_status(err) == 412
    cfg = lambda_client.get_function_configuration(FunctionName=name)
    assert cfg["Description"] == "first"
    assert cfg["RevisionId"] == current
    assert invoke_ok(lambda_client, name)[1]["tag"] == "v1"
    # The current RevisionId is accepted.
    resp = lambda_client.update_function_configuration(FunctionName=name, Description="second", RevisionId=current)
    assert resp["Description"] == "second"


def test_concurrent_updates_with_revision_id_have_one_winner(lambda_client, server):
    name = new_fn(lambda_client)
    client = server.client(max_pool_connections=16)
    n = 8
    for rnd in range(3):
        rev = wait_updated(client, name)["RevisionId"]
        barrier = threading.Barrier(n)

        def attempt(i):
            value = f"round{rnd}-writer{i}"
            barrier.wait()
            try:
                r = client.update_function_configuration(FunctionName=name, Description=value, RevisionId=rev)
                return ("won", value, r)
            except ClientError as e:
                return ("lost", error_code(e), http_status(e))

        with ThreadPoolExecutor(n) as pool:
            results = list(pool.map(attempt, range(n)))
        winners = [r for r in results if r[0] == "won"]
        losers = [r for r in results if r[0] == "lost"]
        assert len(winners) == 1, f"round {rnd}: {len(winners)} writers succeeded with the same RevisionId: {[w[1] for w in winners]}"
        for _, code, status in losers:
            assert (code, status) in {("PreconditionFailedException", 412), ("ResourceConflictException", 409)}, (code, status)
        final = wait_updated(client, name)
        assert final["Description"] == winners[0][1], f"round {rnd}: final {final['Description']!r}, winner {winners[0][1]!r}"
        assert winners[0][2]["RevisionId"] != rev


def test_concurrent_publishes_of_one_state_make_one_version(server):
    """Racing PublishVersion calls on an unchanged `$LATEST` all get the same new version
    (or a conflict); none makes a duplicate version of the same code and configuration."""
    client = server.client(max_pool_connections=16)
    name = new_fn(client)
    n = 8
    rounds = 8
    for rnd in range(rounds):
        set_code(client, name, f"round-{rnd}")
        barrier = threading.Barrier(n)

        def pub(_):
            barrier.wait()
            try:
                return client.publish_version(FunctionName=name)["Version"]
            except ClientError as e:
                assert error_code(e) == "ResourceConflictException", e.response
                return None

        with ThreadPoolExecutor(n) as pool:
            got = [v for v in pool.map(pub, range(n)) if v is not None]
        assert got, f"round {rnd}: every concurrent publish was refused"
        assert len(set(got)) == 1, f"round {rnd}: {n} concurrent publishes of one unchanged $LATEST answered versions {got}"
    versions = all_versions(client, name)[1:]
    shas = [v["CodeSha256"] for v in versions]
    dups = {s: [v["Version"] for v in versions if v["CodeSha256"] == s] for s in shas if shas.count(s) > 1}
    assert not dups, f"versions with identical code and configuration: {sorted(dups.values())}"
    assert [v["Version"] for v in versions] == [str(i) for i in range(1, rounds + 1)]


def test_list_functions_all_versions(lambda_client, server):
    name = new_fn(lambda_client)
    publish(lambda_client, name)
    set_code(lambda_client, name, "v2")
    publish(lambda_client, name)
    entries = [f for f in list_all_functions(lambda_client) if f["FunctionName"] == name]
    assert [f["Version"] for f in entries] == ["$LATEST"]
    every = []
    for page in lambda_client.get_paginator("list_functions").paginate(FunctionVersion="ALL"):
        every.extend(f for f in page["Functions"] if f["FunctionName"] == name)
    assert sorted(f["Version"] for f in every) == ["$LATEST", "1", "2"], [f["Version"] for f in every]
    for f in every:
        if f["Version"] != "$LATEST":
            assert f["FunctionArn"] == server.function_arn(name) + ":" + f["Version"]


def test_versions_and_aliases_survive_restart(server_factory):
    srv = server_factory().start()
    c = srv.client()
    name = new_fn(c, tag="v1", Environment={"Variables": {"STAGE": "one"}})
    publish(c, name)
    set_code(c, name, "v2")
    set_config(c, name, Environment={"Variables": {"STAGE": "two"}})
    publish(c, name)
    set_code(c, name, "v3")
    publish(c, name)
    c.delete_function(FunctionName=name, Qualifier="3")
    c.create_alias(FunctionName=name, Name="live", FunctionVersion="1", Description="kept",
                   RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
    before = [comparable_config(v) for v in all_versions(c, name)]
    alias_before = comparable_config(c.get_alias(FunctionName=name, Name="live"))

    srv.restart()
    c = srv.client()
    assert [comparable_config(v) for v in all_versions(c, name)] == before
    assert comparable_config(c.get_alias(FunctionName=name, Name="live")) == alias_before
    resp, out = invoke_ok(c, name, Qualifier="1")
    assert (out["tag"], out["stage"], resp["ExecutedVersion"]) == ("v1", "one", "1")
    resp, out = invoke_ok(c, name, Qualifier="2")
    assert (out["tag"], out["stage"], resp["ExecutedVersion"]) == ("v2", "two", "2")
    seen = {invoke_ok(c, name, Qualifier="live")[0]["ExecutedVersion"] for _ in range(30)}
    assert seen == {"1", "2"}, f"the alias's 50/50 routing after a restart ran only {seen}"
    # Deleted version 3's number is not handed out again after the restart.
    set_code(c, name, "v4")
    assert publish(c, name)["Version"] == "4"


def test_version_runs_with_its_own_timeout_handler_and_runtime_settings(lambda_client):
    code = (
        "import time\n\n"
        "def handler(event, context):\n"
        "    time.sleep(event.get('sleep', 0))\n"
        "    return {'handler': 'handler', 'remaining': context.get_remaining_time_in_millis()}\n\n"
        "def other(event, context):\n"
        "    time.sleep(event.get('sleep', 0))\n"
        "    return {'handler': 'other', 'remaining': context.get_remaining_time_in_millis()}\n"
    )
    name = unique_name("vcfg")
    create_function(lambda_client, name, make_zip([("app.py", code)]), Timeout=1)
    publish(lambda_client, name)
    set_config(lambda_client, name, Timeout=10, Handler="app.other")

    _, out = invoke_ok(lambda_client, name, {}, Qualifier="1")
    assert out["handler"] == "handler" and out["remaining"] <= 1000, out
    _, out = invoke_ok(lambda_client, name, {})
    assert out["handler"] == "other" and out["remaining"] > 5000, out

    resp = lambda_client.invoke(FunctionName=name, Qualifier="1", Payload=json.dumps({"sleep": 2}).encode())
    body = json.loads(resp["Payload"].read())
    assert resp.get("FunctionError") == "Unhandled" and body.get("errorType") == "Sandbox.Timedout", \
        f"version 1 (Timeout=1) ran a 2 s handler to completion: {body}"
    assert resp["ExecutedVersion"] == "1"
    _, out = invoke_ok(lambda_client, name, {"sleep": 2})
    assert out["handler"] == "other"
