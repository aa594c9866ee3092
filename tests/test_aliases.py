"""Aliases: CreateAlias/GetAlias/UpdateAlias/DeleteAlias/ListAliases, invoking through an
alias, weighted routing between two versions, and the alias/version interplay.

Every test makes its own uniquely named functions on the shared server.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from botocore.exceptions import ClientError

from alonzo_helpers import (
    expect_error,
    invoke_ok,

    UUID_RE,
    create_function,
    error_code,
    http_status,
    make_zip,
    poll_until,
    unique_name,
    wait_updated,
)

APP = r'''
import os

TAG = "__TAG__"


def handler(event, context):
    return {
        "tag": TAG,
        "function_version": context.function_version,
        "invoked_arn": context.invoked_function_arn,
        "env_version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
    }
'''

INVALID_PARAM = {"InvalidParameterValueException", "ValidationException"}


def app_zip(tag: str) -> bytes:
    return make_zip([("app.py", APP.replace("__TAG__", tag))])


def wait_version_active(client, name: str, version: str, timeout: float = 30.0) -> dict:
    def check():
        cfg = client.get_function_configuration(FunctionName=name, Qualifier=version)
        assert cfg.get("State") != "Failed", cfg
        return cfg if cfg.get("State") == "Active" else None

    return poll_until(check, timeout, what=f"{name}:{version} to become Active")


def versioned_function(client, versions: int = 2, prefix: str = "al") -> str:
    """A function with published versions 1..`versions` (version N's code returns tag "vN")
    and an unpublished `$LATEST` returning "latest"."""
    name = unique_name(prefix)
    create_function(client, name, app_zip("v1"), Timeout=10)
    for n in range(1, versions + 1):
        if n > 1:
            client.update_function_code(FunctionName=name, ZipFile=app_zip(f"v{n}"))
            wait_updated(client, name)
        resp = client.publish_version(FunctionName=name)
        assert resp["Version"] == str(n), resp["Version"]
        wait_version_active(client, name, str(n))
    client.update_function_code(FunctionName=name, ZipFile=app_zip("latest"))
    wait_updated(client, name)
    return name


def alias_names(client, name: str, **kw) -> list[str]:
    out = []
    for page in client.get_paginator("list_aliases").paginate(FunctionName=name, **kw):
        out.extend(a["Name"] for a in page["Aliases"])
    return out


def strip(resp: dict) -> dict:
    d = dict(resp)
    d.pop("ResponseMetadata", None)
    return d


# --------------------------------------------------------------------------------------
# CRUD
# --------------------------------------------------------------------------------------


def test_create_and_get_alias(lambda_client, server):
    name = versioned_function(lambda_client)
    resp = lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1", Description="production")
    assert http_status(resp) == 201
    assert resp["AliasArn"] == server.function_arn(name) + ":live"
    assert resp["Name"] == "live"
    assert resp["FunctionVersion"] == "1"
    assert resp["Description"] == "production"
    assert UUID_RE.match(resp["RevisionId"]), resp["RevisionId"]
    assert not (resp.get("RoutingConfig") or {}).get("AdditionalVersionWeights")

    got = lambda_client.get_alias(FunctionName=name, Name="live")
    assert http_status(got) == 200
    assert strip(got) == strip(resp)
    # By ARN, too.
    got = lambda_client.get_alias(FunctionName=server.function_arn(name), Name="live")
    assert got["AliasArn"] == resp["AliasArn"]

    latest = lambda_client.create_alias(FunctionName=name, Name="edge_-Alias9", FunctionVersion="$LATEST")
    assert latest["FunctionVersion"] == "$LATEST"
    assert latest["AliasArn"] == server.function_arn(name) + ":edge_-Alias9"
    assert sorted(alias_names(lambda_client, name)) == sorted(["live", "edge_-Alias9"])


def test_alias_name_rules(raw_client):
    name = versioned_function(raw_client, versions=1)
    for bad in ("123", "0", "has.dot", "has space", "$LATEST", "a" * 129, ""):
        err = expect_error(INVALID_PARAM, raw_client.create_alias, FunctionName=name, Name=bad, FunctionVersion="1")
        assert http_status(err) == 400, (bad, err.response)
    assert alias_names(raw_client, name) == []
    # A name with digits that is not all digits is fine.
    assert raw_client.create_alias(FunctionName=name, Name="v1", FunctionVersion="1")["Name"] == "v1"


def test_alias_to_missing_version_or_function(lambda_client):
    name = versioned_function(lambda_client, versions=1)
    for bad in ("2", "42"):
        err = expect_error({"ResourceNotFoundException"} | INVALID_PARAM, lambda_client.create_alias,
                           FunctionName=name, Name=f"to{bad}", FunctionVersion=bad)
        assert http_status(err) in (400, 404)
    lambda_client.create_alias(FunctionName=name, Name="ok", FunctionVersion="1")
    err = expect_error({"ResourceNotFoundException"} | INVALID_PARAM, lambda_client.update_alias,
                       FunctionName=name, Name="ok", FunctionVersion="42")
    assert lambda_client.get_alias(FunctionName=name, Name="ok")["FunctionVersion"] == "1"
    expect_error("ResourceNotFoundException", lambda_client.create_alias, FunctionName=unique_name("ghost"),
                 Name="live", FunctionVersion="1", status=404)
    assert sorted(alias_names(lambda_client, name)) == ["ok"]


def test_duplicate_alias_is_a_conflict(lambda_client):
    name = versioned_function(lambda_client)
    lambda_client.create_alias(FunctionName=name, Name="dup", FunctionVersion="1")
    expect_error("ResourceConflictException", lambda_client.create_alias, FunctionName=name, Name="dup",
                 FunctionVersion="2", status=409)
    assert lambda_client.get_alias(FunctionName=name, Name="dup")["FunctionVersion"] == "1"
    # The same alias name on another function is independent.
    other = versioned_function(lambda_client, versions=1)
    lambda_client.create_alias(FunctionName=other, Name="dup", FunctionVersion="1")


def test_unknown_alias_is_404(lambda_client):
    name = versioned_function(lambda_client, versions=1)
    expect_error("ResourceNotFoundException", lambda_client.get_alias, FunctionName=name, Name="nope", status=404)
    expect_error("ResourceNotFoundException", lambda_client.update_alias, FunctionName=name, Name="nope",
                 FunctionVersion="1", status=404)
    expect_error("ResourceNotFoundException", lambda_client.delete_alias, FunctionName=name, Name="nope", status=404)
    expect_error("ResourceNotFoundException", lambda_client.invoke, FunctionName=name, Qualifier="nope",
                 Payload=b"{}", status=404)
    expect_error("ResourceNotFoundException", lambda_client.get_function_configuration, FunctionName=name,
                 Qualifier="nope", status=404)
    expect_error("ResourceNotFoundException", lambda_client.get_alias, FunctionName=unique_name("ghost"),
                 Name="live", status=404)


def test_update_alias_partial_and_revision_id(lambda_client):
    name = versioned_function(lambda_client, versions=3)
    created = lambda_client.create_alias(FunctionName=name, Name="stage", FunctionVersion="1", Description="first")

    r1 = lambda_client.update_alias(FunctionName=name, Name="stage", FunctionVersion="2")
    assert http_status(r1) == 200
    assert r1["FunctionVersion"] == "2"
    assert r1["Description"] == "first", "UpdateAlias without Description dropped it"
    assert r1["RevisionId"] != created["RevisionId"]

    r2 = lambda_client.update_alias(FunctionName=name, Name="stage", Description="second")
    assert r2["FunctionVersion"] == "2", "UpdateAlias without FunctionVersion changed it"
    assert r2["Description"] == "second"
    assert r2["RevisionId"] not in (created["RevisionId"], r1["RevisionId"])

    # A stale RevisionId is refused and changes nothing.
    err = expect_error("PreconditionFailedException", lambda_client.update_alias, FunctionName=name, Name="stage",
                       FunctionVersion="3", RevisionId=r1["RevisionId"])
    assert http_status(err) == 412
    got = lambda_client.get_alias(FunctionName=name, Name="stage")
    assert (got["FunctionVersion"], got["Description"], got["RevisionId"]) == ("2", "second", r2["RevisionId"])

    # The current one is accepted.
    r3 = lambda_client.update_alias(FunctionName=name, Name="stage", FunctionVersion="3", RevisionId=r2["RevisionId"])
    assert r3["FunctionVersion"] == "3"
    assert lambda_client.get_alias(FunctionName=name, Name="stage")["RevisionId"] == r3["RevisionId"]


def test_delete_alias(lambda_client):
    name = versioned_function(lambda_client, versions=1)
    lambda_client.create_alias(FunctionName=name, Name="gone", FunctionVersion="1")
    lambda_client.create_alias(FunctionName=name, Name="kept", FunctionVersion="1")
    resp = lambda_client.delete_alias(FunctionName=name, Name="gone")
    assert http_status(resp) == 204
    expect_error("ResourceNotFoundException", lambda_client.get_alias, FunctionName=name, Name="gone", status=404)
    expect_error("ResourceNotFoundException", lambda_client.invoke, FunctionName=name, Qualifier="gone", Payload=b"{}")
    assert alias_names(lambda_client, name) == ["kept"]
    # The version itself is untouched, and the name can be used again.
    assert invoke_ok(lambda_client, name, Qualifier="1")[1]["tag"] == "v1"
    again = lambda_client.create_alias(FunctionName=name, Name="gone", FunctionVersion="$LATEST")
    assert again["FunctionVersion"] == "$LATEST"


def test_list_aliases_filter_and_pagination(lambda_client):
    name = versioned_function(lambda_client, versions=2)
    expected = {"a-one": "1", "b-one": "1", "c-two": "2", "d-two": "2", "e-latest": "$LATEST"}
    for alias, ver in expected.items():
        lambda_client.create_alias(FunctionName=name, Name=alias, FunctionVersion=ver)
    listed = lambda_client.list_aliases(FunctionName=name)["Aliases"]
    assert {a["Name"]: a["FunctionVersion"] for a in listed} == expected
    for a in listed:
        assert a["AliasArn"].endswith(f":function:{name}:{a['Name']}")
        assert a.get("RevisionId")
    assert sorted(alias_names(lambda_client, name, FunctionVersion="1")) == ["a-one", "b-one"]
    assert sorted(alias_names(lambda_client, name, FunctionVersion="2")) == ["c-two", "d-two"]
    assert sorted(alias_names(lambda_client, name, FunctionVersion="$LATEST")) == ["e-latest"]

    pages, marker = [], None
    for _ in range(10):
        kw = {"MaxItems": 2}
        if marker:
            kw["Marker"] = marker
        page = lambda_client.list_aliases(FunctionName=name, **kw)
        assert len(page["Aliases"]) <= 2
        pages.append([a["Name"] for a in page["Aliases"]])
        marker = page.get("NextMarker")
        if not marker:
            break
    flat = [n for p in pages for n in p]
    assert sorted(flat) == sorted(expected) and len(flat) == len(set(flat)), pages
    assert len(pages) >= 3, pages
    paged = alias_names(lambda_client, name, PaginationConfig={"PageSize": 1})
    assert sorted(paged) == sorted(expected) and len(paged) == len(expected)
    expect_error("ResourceNotFoundException", lambda_client.list_aliases, FunctionName=unique_name("ghost"), status=404)


# --------------------------------------------------------------------------------------
# Invoking through an alias
# --------------------------------------------------------------------------------------


def test_invoke_through_alias(lambda_client, server):
    name = versioned_function(lambda_client, versions=2)
    lambda_client.create_alias(FunctionName=name, Name="prod", FunctionVersion="1")
    arn = server.function_arn(name)
    for kw in ({"FunctionName": name, "Qualifier": "prod"}, {"FunctionName": f"{name}:prod"},
               {"FunctionName": f"{arn}:prod"}, {"FunctionName": arn, "Qualifier": "prod"}):
        resp, out = invoke_ok(lambda_client, **kw)
        assert out["tag"] == "v1", kw
        assert resp["ExecutedVersion"] == "1", (kw, resp.get("ExecutedVersion"))
        assert resp["ResponseMetadata"]["HTTPHeaders"].get("x-amz-executed-version") == "1"
        assert out["function_version"] == "1", kw
        assert out["env_version"] == "1", kw
        assert out["invoked_arn"] == arn + ":prod", (kw, out["invoked_arn"])
    # GetFunctionConfiguration through the alias shows the version it points to.
    cfg = lambda_client.get_function_configuration(FunctionName=name, Qualifier="prod")
    assert cfg["Version"] == "1"
    full = lambda_client.get_function(FunctionName=f"{name}:prod")
    assert full["Configuration"]["Version"] == "1"
    assert requests.get(full["Code"]["Location"], timeout=30).content == app_zip("v1")


def test_event_invoke_through_alias_runs_its_version(lambda_client, server):
    name = versioned_function(lambda_client, versions=2)
    lambda_client.create_alias(FunctionName=name, Name="async", FunctionVersion="1")
    resp = lambda_client.invoke(FunctionName=name, Qualifier="async", InvocationType="Event", Payload=b'{"k": 1}')
    assert resp["StatusCode"] == 202
    rid = resp["ResponseMetadata"]["RequestId"]
    logs = server.data_dir / "logs" / f"aws-lambda-{name}"

    def stored():
        text = "".join(p.read_text(errors="replace") for p in sorted(logs.glob("*.log"))) if logs.is_dir() else ""
        return text if f"REPORT RequestId: {rid}" in text else None

    text = poll_until(stored, 20, what=f"the Event invocation {rid} in the stored log")
    assert f"START RequestId: {rid} Version: 1" in text, text[-2000:]
    expect_error("ResourceNotFoundException", lambda_client.invoke, FunctionName=name, Qualifier="nope",
                 InvocationType="Event", Payload=b"{}", status=404)


def test_update_alias_takes_effect_on_next_invoke(lambda_client):
    name = versioned_function(lambda_client, versions=2)
    lambda_client.create_alias(FunctionName=name, Name="blue", FunctionVersion="1")
    assert invoke_ok(lambda_client, name, Qualifier="blue")[1]["tag"] == "v1"  # warm
    lambda_client.update_alias(FunctionName=name, Name="blue", FunctionVersion="2")
    resp, out = invoke_ok(lambda_client, name, Qualifier="blue")
    assert out["tag"] == "v2", "the alias still ran its previous version after UpdateAlias"
    assert resp["ExecutedVersion"] == "2" and out["function_version"] == "2"
    lambda_client.update_alias(FunctionName=name, Name="blue", FunctionVersion="$LATEST")
    resp, out = invoke_ok(lambda_client, name, Qualifier="blue")
    assert out["tag"] == "latest" and resp["ExecutedVersion"] == "$LATEST"
    lambda_client.update_alias(FunctionName=name, Name="blue", FunctionVersion="1")
    assert invoke_ok(lambda_client, name, Qualifier="blue")[1]["tag"] == "v1"


def test_alias_to_latest_follows_code_updates(lambda_client, server):
    name = versioned_function(lambda_client, versions=1)
    lambda_client.create_alias(FunctionName=name, Name="dev", FunctionVersion="$LATEST")
    resp, out = invoke_ok(lambda_client, name, Qualifier="dev")
    assert out["tag"] == "latest"
    assert resp["ExecutedVersion"] == "$LATEST" and out["function_version"] == "$LATEST"
    assert out["invoked_arn"] == server.function_arn(name) + ":dev"
    lambda_client.update_function_code(FunctionName=name, ZipFile=app_zip("newer"))
    wait_updated(lambda_client, name)
    assert invoke_ok(lambda_client, name, Qualifier="dev")[1]["tag"] == "newer"


def test_delete_version_referenced_by_alias_is_refused(lambda_client):
    name = versioned_function(lambda_client, versions=3)
    lambda_client.create_alias(FunctionName=name, Name="pinned", FunctionVersion="1")
    err = expect_error("ResourceConflictException", lambda_client.delete_function, FunctionName=name, Qualifier="1")
    assert http_status(err) == 409
    assert invoke_ok(lambda_client, name, Qualifier="pinned")[1]["tag"] == "v1"
    # A version that is only the routing target of an alias is referenced too.
    lambda_client.create_alias(FunctionName=name, Name="canary", FunctionVersion="2",
                               RoutingConfig={"AdditionalVersionWeights": {"3": 0.5}})
    expect_error("ResourceConflictException", lambda_client.delete_function, FunctionName=name, Qualifier="2")
    expect_error("ResourceConflictException", lambda_client.delete_function, FunctionName=name, Qualifier="3")
    lambda_client.delete_alias(FunctionName=name, Name="pinned")
    lambda_client.delete_function(FunctionName=name, Qualifier="1")
    expect_error("ResourceNotFoundException", lambda_client.get_function_configuration, FunctionName=name, Qualifier="1")


def test_delete_function_removes_aliases(lambda_client):
    name = versioned_function(lambda_client, versions=1)
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    lambda_client.delete_function(FunctionName=name)
    create_function(lambda_client, name, app_zip("reborn"))
    expect_error("ResourceNotFoundException", lambda_client.get_alias, FunctionName=name, Name="live", status=404)
    assert alias_names(lambda_client, name) == []
    expect_error("ResourceNotFoundException", lambda_client.invoke, FunctionName=name, Qualifier="live", Payload=b"{}")


# --------------------------------------------------------------------------------------
# Routing configuration
# --------------------------------------------------------------------------------------


def test_routing_config_validation(raw_client):
    c = raw_client
    name = versioned_function(c, versions=3)
    bad = [
        ("two additional versions", "1", {"2": 0.1, "3": 0.1}),
        ("weight above 1", "1", {"2": 1.5}),
        ("negative weight", "1", {"2": -0.1}),
        ("$LATEST as primary", "$LATEST", {"1": 0.2}),
        ("$LATEST as additional", "1", {"$LATEST": 0.2}),
        ("additional equals primary", "1", {"1": 0.2}),
    ]
    for what, primary, weights in bad:
        alias = unique_name("r")[:20]
        err = expect_error(INVALID_PARAM, c.create_alias, FunctionName=name, Name=alias, FunctionVersion=primary,
                           RoutingConfig={"AdditionalVersionWeights": weights})
        assert http_status(err) == 400, (what, err.response)
        expect_error("ResourceNotFoundException", c.get_alias, FunctionName=name, Name=alias)
    err = expect_error({"ResourceNotFoundException"} | INVALID_PARAM, c.create_alias, FunctionName=name, Name="ghostroute",
                       FunctionVersion="1", RoutingConfig={"AdditionalVersionWeights": {"9": 0.2}})
    assert http_status(err) in (400, 404)
    assert alias_names(c, name) == []

    # The same rules on UpdateAlias, which leaves the alias as it was.
    good = c.create_alias(FunctionName=name, Name="canary", FunctionVersion="1",
                          RoutingConfig={"AdditionalVersionWeights": {"2": 0.25}})
    assert good["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.25}
    for what, primary, weights in bad:
        kw = {"RoutingConfig": {"AdditionalVersionWeights": weights}}
        if primary != "1":
            kw["FunctionVersion"] = primary
        expect_error(INVALID_PARAM, c.update_alias, FunctionName=name, Name="canary", **kw)
    # Pointing a routed alias at $LATEST while it keeps its routing is refused too.
    expect_error(INVALID_PARAM, c.update_alias, FunctionName=name, Name="canary", FunctionVersion="$LATEST")
    # Pointing it at its own additional version is refused.
    expect_error(INVALID_PARAM, c.update_alias, FunctionName=name, Name="canary", FunctionVersion="2")
    got = c.get_alias(FunctionName=name, Name="canary")
    assert got["FunctionVersion"] == "1" and got["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.25}
    assert got["RevisionId"] == good["RevisionId"]


def _routed_share(client, name: str, alias: str, n: int) -> tuple[float, dict]:
    def one(_):
        resp, out = invoke_ok(client, name, Qualifier=alias)
        executed = resp["ExecutedVersion"]
        assert out["tag"] == f"v{executed}", f"ExecutedVersion {executed} but the code of {out['tag']} ran"
        assert out["function_version"] == executed
        assert out["invoked_arn"].endswith(f":{alias}"), out["invoked_arn"]
        return executed

    with ThreadPoolExecutor(4) as pool:
        executed = list(pool.map(one, range(n)))
    counts = {v: executed.count(v) for v in set(executed)}
    return counts, executed


@pytest.mark.parametrize("weight", [0.3])
def test_weighted_routing_distribution(lambda_client, server, weight):
    client = server.client(max_pool_connections=8)
    name = versioned_function(client, versions=2)
    client.create_alias(FunctionName=name, Name="split", FunctionVersion="1",
                        RoutingConfig={"AdditionalVersionWeights": {"2": weight}})
    n = 300
    counts, _ = _routed_share(client, name, "split", n)
    assert set(counts) <= {"1", "2"}, counts
    p = counts.get("2", 0) / n
    band = 4 * math.sqrt(weight * (1 - weight) / n)
    assert abs(p - weight) <= band, f"additional version ran {counts.get('2', 0)}/{n} = {p:.3f}, expected {weight}±{band:.3f}: {counts}"


def test_routing_weight_edges_and_removal(lambda_client, server):
    client = server.client(max_pool_connections=8)
    name = versioned_function(client, versions=2)
    client.create_alias(FunctionName=name, Name="edge", FunctionVersion="1",
                        RoutingConfig={"AdditionalVersionWeights": {"2": 1.0}})
    counts, _ = _routed_share(client, name, "edge", 30)
    assert counts == {"2": 30}, f"weight 1.0: {counts}"

    client.update_alias(FunctionName=name, Name="edge", RoutingConfig={"AdditionalVersionWeights": {"2": 0.0}})
    counts, _ = _routed_share(client, name, "edge", 30)
    assert counts == {"1": 30}, f"weight 0.0: {counts}"

    client.update_alias(FunctionName=name, Name="edge", RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
    counts, _ = _routed_share(client, name, "edge", 60)
    assert set(counts) == {"1", "2"}, f"weight 0.5 over 60 invocations ran only {counts}"

    # An empty map removes the routing.
    r = client.update_alias(FunctionName=name, Name="edge", RoutingConfig={"AdditionalVersionWeights": {}})
    assert not (r.get("RoutingConfig") or {}).get("AdditionalVersionWeights"), r.get("RoutingConfig")
    got = client.get_alias(FunctionName=name, Name="edge")
    assert not (got.get("RoutingConfig") or {}).get("AdditionalVersionWeights"), got.get("RoutingConfig")
    counts, _ = _routed_share(client, name, "edge", 30)
    assert counts == {"1": 30}, f"after removing the routing: {counts}"
    # Without routing, the alias may point at $LATEST again.
    assert client.update_alias(FunctionName=name, Name="edge", FunctionVersion="$LATEST")["FunctionVersion"] == "$LATEST"


def test_racing_version_delete_and_alias_never_dangles(server):
    """A version an alias references cannot be deleted, also when DeleteFunction(Qualifier=N)
    races CreateAlias/UpdateAlias naming N: afterwards either the version exists or no alias
    routes to it."""
    c = server.client(max_pool_connections=8)
    name = versioned_function(c, versions=1)
    dangling = []

    def race(delete_version: str, alias_call) -> tuple:
        barrier = threading.Barrier(2)

        def delete():
            barrier.wait()
            try:
                c.delete_function(FunctionName=name, Qualifier=delete_version)
                return "deleted"
            except ClientError as e:
                return error_code(e)

        def alias():
            barrier.wait()
            try:
                alias_call()
                return "aliased"
            except ClientError as e:
                return error_code(e)

        with ThreadPoolExecutor(2) as pool:
            f1, f2 = pool.submit(delete), pool.submit(alias)
            return f1.result(), f2.result()

    def exists(version: str) -> bool:
        try:
            c.get_function_configuration(FunctionName=name, Qualifier=version)
            return True
        except ClientError as e:
            assert error_code(e) == "ResourceNotFoundException"
            return False

    for rnd in range(12):
        c.update_function_code(FunctionName=name, ZipFile=app_zip(f"c{rnd}"))
        wait_updated(c, name)
        v = c.publish_version(FunctionName=name)["Version"]
        alias = f"new{rnd}"
        outcome = race(v, lambda: c.create_alias(FunctionName=name, Name=alias, FunctionVersion=v))
        try:
            target = c.get_alias(FunctionName=name, Name=alias)["FunctionVersion"]
        except ClientError:
            target = None
        if target == v and not exists(v):
            dangling.append(f"CreateAlias {alias}->{v} {outcome}")

        c.update_function_code(FunctionName=name, ZipFile=app_zip(f"d{rnd}"))
        wait_updated(c, name)
        v2 = c.publish_version(FunctionName=name)["Version"]
        routed = f"routed{rnd}"
        c.create_alias(FunctionName=name, Name=routed, FunctionVersion="1")
        outcome = race(v2, lambda: c.update_alias(FunctionName=name, Name=routed,
                                                  RoutingConfig={"AdditionalVersionWeights": {v2: 0.5}}))
        weights = (c.get_alias(FunctionName=name, Name=routed).get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        if v2 in weights and not exists(v2):
            dangling.append(f"UpdateAlias {routed} routing->{v2} {outcome}")
    assert not dangling, f"aliases left referencing deleted versions: {dangling}"
