"""Function control plane through boto3: every in-scope operation, end to end."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests
from botocore.exceptions import ClientError

from alonzo_helpers import (
    ACCOUNT,
    AVAILABLE_RUNTIMES,
    LAST_MODIFIED_RE,
    REGION,
    ROLE,
    bootstrap_zip,
    comparable_config,
    create_function,
    create_kwargs,
    error_code,
    fn_path,
    http_status,
    make_zip,
    node_zip,
    python_zip,
    sha256_b64,
    sign_and_send,
    assert_lambda_error,
    unique_name,
    wait_active,
    wait_updated,
)


def partial_arn(name: str) -> str:
    return f"{ACCOUNT}:function:{name}"


def full_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def parse_last_modified(s: str) -> dt.datetime:
    assert LAST_MODIFIED_RE.match(s), f"LastModified {s!r} is not like 2026-11-29T16:00:00.000+0000"
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%f%z")


# --------------------------------------------------------------------------------------
# CreateFunction
# --------------------------------------------------------------------------------------


def test_create_function_response(lambda_client):
    name = unique_name()
    zip_bytes = python_zip()
    before = dt.datetime.now(dt.timezone.utc)
    resp = lambda_client.create_function(**create_kwargs(name, zip_bytes))
    after = dt.datetime.now(dt.timezone.utc)

    assert http_status(resp) == 201
    assert resp["FunctionName"] == name
    assert resp["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert resp["Runtime"] == "python3.11"
    assert resp["Role"] == ROLE
    assert resp["Handler"] == "app.handler"
    assert resp["CodeSize"] == len(zip_bytes)
    assert resp["CodeSha256"] == sha256_b64(zip_bytes)
    assert resp["Version"] == "$LATEST"
    assert resp["Timeout"] == 3
    assert resp["MemorySize"] == 128
    assert resp.get("PackageType", "Zip") == "Zip"
    assert resp["State"] in ("Pending", "Active")
    assert resp.get("LastUpdateStatus") in (None, "InProgress", "Successful")
    assert isinstance(resp["RevisionId"], str) and resp["RevisionId"]
    lm = parse_last_modified(resp["LastModified"])
    assert before - dt.timedelta(seconds=2) <= lm <= after + dt.timedelta(seconds=2)
    if "Architectures" in resp:
        assert resp["Architectures"] == ["x86_64"]
    if "EphemeralStorage" in resp:
        assert resp["EphemeralStorage"] == {"Size": 512}

    cfg = wait_active(lambda_client, name)
    assert cfg["State"] == "Active"
    assert cfg["LastUpdateStatus"] == "Successful"
    assert cfg["CodeSha256"] == resp["CodeSha256"]


@pytest.mark.parametrize("runtime", AVAILABLE_RUNTIMES)
def test_create_with_each_available_runtime(lambda_client, runtime):
    name = unique_name(runtime.replace(".", ""))
    if runtime.startswith("python"):
        code, handler = python_zip(), "app.handler"
    elif runtime.startswith("nodejs"):
        code, handler = node_zip(), "index.handler"
    else:
        code, handler = bootstrap_zip(), "bootstrap"
    resp = lambda_client.create_function(**create_kwargs(name, code, Runtime=runtime, Handler=handler))
    assert resp["Runtime"] == runtime
    cfg = wait_active(lambda_client, name)
    assert cfg["Runtime"] == runtime
    assert cfg["Handler"] == handler


def test_create_roundtrips_optional_settings(lambda_client):
    name = unique_name()
    env = {"FOO": "bar", "EMPTY_VALUE": "", "UNICODE_VAL": "héllo ✓"}
    tags = {"team": "alonzo", "cost-center": "1234", "empty": ""}
    resp = lambda_client.create_function(
        **create_kwargs(
            name,
            Description="a description ✓",
            Timeout=42,
            MemorySize=1024,
            Environment={"Variables": env},
            EphemeralStorage={"Size": 2048},
            Tags=tags,
        )
    )
    for cfg in (resp, wait_active(lambda_client, name)):
        assert cfg["Description"] == "a description ✓"
        assert cfg["Timeout"] == 42
        assert cfg["MemorySize"] == 1024
        assert cfg["Environment"]["Variables"] == env
        assert cfg["EphemeralStorage"] == {"Size": 2048}
    got = lambda_client.get_function(FunctionName=name)
    assert got["Tags"] == tags
    assert lambda_client.list_tags(Resource=full_arn(name))["Tags"] == tags


def test_create_large_package_roundtrips(lambda_client):
    """A 6 MiB incompressible package is stored and served byte for byte."""
    name = unique_name()
    zip_bytes = make_zip([("app.py", "def handler(e, c):\n    return e\n"), ("blob.bin", os.urandom(6 << 20))])
    resp = lambda_client.create_function(**create_kwargs(name, zip_bytes))
    assert resp["CodeSize"] == len(zip_bytes)
    assert resp["CodeSha256"] == sha256_b64(zip_bytes)
    wait_active(lambda_client, name)
    loc = lambda_client.get_function(FunctionName=name)["Code"]["Location"]
    got = requests.get(loc, timeout=30)
    assert got.status_code == 200
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(zip_bytes).digest()


def test_concurrent_creates_of_one_name_have_one_winner(server):
    name = unique_name()
    results: list[object] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def worker(i: int):
        client = server.client()
        barrier.wait()
        try:
            r = client.create_function(**create_kwargs(name, python_zip(f"racer-{i}")))
            out = ("ok", r["CodeSha256"])
        except ClientError as e:
            out = ("err", error_code(e))
        with lock:
            results.append(out)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    oks = [r for r in results if r[0] == "ok"]
    errs = [r for r in results if r[0] == "err"]
    assert len(results) == 6
    assert len(oks) == 1, results
    assert all(e[1] == "ResourceConflictException" for e in errs), results
    client = server.client()
    assert client.get_function_configuration(FunctionName=name)["CodeSha256"] == oks[0][1]


# --------------------------------------------------------------------------------------
# GetFunction / GetFunctionConfiguration / Code.Location
# --------------------------------------------------------------------------------------


def test_get_function_and_configuration_agree(lambda_client):
    name = unique_name()
    create_function(lambda_client, name, Description="agree")
    full = lambda_client.get_function(FunctionName=name)
    conf = lambda_client.get_function_configuration(FunctionName=name)
    assert http_status(full) == 200 and http_status(conf) == 200
    assert comparable_config(full["Configuration"]) == comparable_config(conf)
    assert full["Code"]["RepositoryType"] == "S3"
    assert full["Code"]["Location"].startswith("http")


def test_get_missing_function_is_lambda_shaped_404(server, lambda_client):
    name = unique_name("missing")
    with pytest.raises(ClientError) as ei:
        lambda_client.get_function(FunctionName=name)
    assert error_code(ei.value) == "ResourceNotFoundException"
    assert http_status(ei.value) == 404
    assert name in ei.value.response["Error"]["Message"]
    raw = sign_and_send(server, "GET", fn_path(name))
    body = assert_lambda_error(raw, status=404, code="ResourceNotFoundException")
    assert body["Type"] == "User"
    assert raw.headers.get("Content-Type", "").startswith("application/json")


def test_code_location_downloads_identical_bytes_unsigned(server, lambda_client):
    name = unique_name()
    zip_bytes = python_zip(extra={"lib/helper.py": "X = 1\n" * 1000})
    create_function(lambda_client, name, zip_bytes)
    loc = lambda_client.get_function(FunctionName=name)["Code"]["Location"]
    parts = urlsplit(loc)
    assert parts.scheme == "http"
    assert parts.hostname == "127.0.0.1" and parts.port == server.port, loc
    r = requests.get(loc, timeout=30)  # no SigV4, no credentials at all
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.content == zip_bytes
    # A second download works too (the URL is not single-use).
    assert requests.get(loc, timeout=30).content == zip_bytes


def _tampered_urls(url: str, other_url: str | None = None):
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    variants = []
    if query:
        variants.append(("query stripped", urlunsplit(parts._replace(query=""))))
        idx = max(range(len(query)), key=lambda i: len(query[i][1]))
        k, v = query[idx]
        flipped = v[:-1] + ("A" if v[-1:] != "A" else "B")
        q2 = list(query)
        q2[idx] = (k, flipped)
        variants.append((f"{k} tampered", urlunsplit(parts._replace(query=urlencode(q2)))))
    else:
        segs = parts.path.rstrip("/").split("/")
        last = segs[-1]
        segs[-1] = last[:-1] + ("A" if last[-1:] != "A" else "B")
        variants.append(("path token tampered", urlunsplit(parts._replace(path="/".join(segs)))))
    if other_url is not None:
        other = urlsplit(other_url)
        if other.path != parts.path and query:
            variants.append(("other function's path with this query", urlunsplit(parts._replace(path=other.path))))
    return variants


def test_code_location_rejects_tampering(lambda_client):
    a, b = unique_name("a"), unique_name("b")
    za, zb = python_zip(), python_zip()
    create_function(lambda_client, a, za)
    create_function(lambda_client, b, zb)
    loc_a = lambda_client.get_function(FunctionName=a)["Code"]["Location"]
    loc_b = lambda_client.get_function(FunctionName=b)["Code"]["Location"]
    assert loc_a != loc_b
    variants = _tampered_urls(loc_a, loc_b)
    assert variants
    for label, url in variants:
        r = requests.get(url, timeout=30)
        assert 400 <= r.status_code < 500, f"{label}: {url} answered {r.status_code}"
        assert r.content not in (za, zb), f"{label}: tampered URL still served the package"


_EXPIRY_KEYS = ("expires", "exp", "expiry", "expires_at", "expiresat", "e")


def _expiry_of(url: str) -> float | None:
    q = {k.lower(): v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    if "x-amz-expires" in q and "x-amz-date" in q:
        start = dt.datetime.strptime(q["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
        return start.timestamp() + int(q["x-amz-expires"])
    for k in _EXPIRY_KEYS:
        if k in q and q[k].isdigit():
            return float(q[k]) / (1000.0 if len(q[k]) >= 13 else 1.0)
    return None


def test_code_location_carries_a_bounded_expiry_that_is_signed(lambda_client):
    name = unique_name()
    zip_bytes = python_zip()
    create_function(lambda_client, name, zip_bytes)
    loc = lambda_client.get_function(FunctionName=name)["Code"]["Location"]
    exp = _expiry_of(loc)
    assert exp is not None, f"Code.Location has no recognisable expiry (X-Amz-Date+X-Amz-Expires or Expires=<epoch>): {loc}"
    now = time.time()
    assert now < exp <= now + 24 * 3600, f"expiry {exp} not within a day from now ({now})"
    # Pushing the expiry into the future (or the past) without re-signing must not work.
    parts = urlsplit(loc)
    query = parse_qsl(parts.query, keep_blank_values=True)
    for delta in (3600 * 24 * 365, -3600 * 24):
        q2 = []
        for k, v in query:
            lk = k.lower()
            if lk == "x-amz-expires":
                v = str(max(1, int(v) + delta))
            elif lk in _EXPIRY_KEYS and v.isdigit():
                v = str(int(v) + delta * (1000 if len(v) >= 13 else 1))
            q2.append((k, v))
        url = urlunsplit(parts._replace(query=urlencode(q2)))
        r = requests.get(url, timeout=30)
        assert 400 <= r.status_code < 500, f"expiry moved by {delta}s still accepted: {r.status_code}"
        assert r.content != zip_bytes


def test_code_location_dead_after_delete(lambda_client):
    name = unique_name()
    zip_bytes = python_zip()
    create_function(lambda_client, name, zip_bytes)
    loc = lambda_client.get_function(FunctionName=name)["Code"]["Location"]
    assert requests.get(loc, timeout=30).content == zip_bytes
    lambda_client.delete_function(FunctionName=name)
    r = requests.get(loc, timeout=30)
    assert r.status_code >= 400, f"deleted function's package still downloadable ({r.status_code})"
    assert r.content != zip_bytes


# --------------------------------------------------------------------------------------
# UpdateFunctionCode / UpdateFunctionConfiguration
# --------------------------------------------------------------------------------------


def test_update_function_code(lambda_client):
    name = unique_name()
    z1 = python_zip()
    c1 = create_function(lambda_client, name, z1)
    c1 = lambda_client.get_function_configuration(FunctionName=name)
    z2 = python_zip(extra={"more.py": "Y = 2\n" * 100})
    assert len(z2) != len(z1)
    resp = lambda_client.update_function_code(FunctionName=name, ZipFile=z2)
    assert http_status(resp) == 200
    assert resp["CodeSha256"] == sha256_b64(z2)
    assert resp["CodeSize"] == len(z2)
    assert resp["RevisionId"] != c1["RevisionId"]
    assert resp.get("LastUpdateStatus") in ("InProgress", "Successful")
    assert parse_last_modified(resp["LastModified"]) >= parse_last_modified(c1["LastModified"])
    # Configuration is untouched by a code update.
    for k in ("Runtime", "Handler", "Role", "MemorySize", "Timeout"):
        assert resp[k] == c1[k]
    cfg = wait_updated(lambda_client, name)
    assert cfg["LastUpdateStatus"] == "Successful"
    assert cfg["CodeSha256"] == sha256_b64(z2)
    loc = lambda_client.get_function(FunctionName=name)["Code"]["Location"]
    assert requests.get(loc, timeout=30).content == z2


def test_update_function_code_with_matching_revision_id(lambda_client):
    name = unique_name()
    create_function(lambda_client, name)
    rev = lambda_client.get_function_configuration(FunctionName=name)["RevisionId"]
    z2 = python_zip()
    resp = lambda_client.update_function_code(FunctionName=name, ZipFile=z2, RevisionId=rev)
    assert resp["CodeSha256"] == sha256_b64(z2)
    assert resp["RevisionId"] != rev


def test_update_function_configuration_is_partial(lambda_client):
    name = unique_name()
    create_function(
        lambda_client,
        name,
        Description="original",
        Timeout=10,
        MemorySize=256,
        Environment={"Variables": {"KEEP": "1", "DROP": "2"}},
    )
    before = lambda_client.get_function_configuration(FunctionName=name)

    resp = lambda_client.update_function_configuration(FunctionName=name, MemorySize=512)
    assert http_status(resp) == 200
    assert resp["MemorySize"] == 512
    assert resp["Description"] == "original" and resp["Timeout"] == 10
    assert resp["Environment"]["Variables"] == {"KEEP": "1", "DROP": "2"}
    assert resp["CodeSha256"] == before["CodeSha256"]
    assert resp["RevisionId"] != before["RevisionId"]
    wait_updated(lambda_client, name)

    # Environment.Variables replaces the whole map.
    resp = lambda_client.update_function_configuration(FunctionName=name, Environment={"Variables": {"NEW": "x"}})
    assert resp["Environment"]["Variables"] == {"NEW": "x"}
    wait_updated(lambda_client, name)

    resp = lambda_client.update_function_configuration(
        FunctionName=name,
        Description="changed",
        Timeout=900,
        Handler="other.main",
        Runtime="nodejs20.x",
        EphemeralStorage={"Size": 10240},
        Role=f"arn:aws:iam::{ACCOUNT}:role/other-role",
    )
    assert resp["Description"] == "changed"
    assert resp["Timeout"] == 900
    assert resp["Handler"] == "other.main"
    assert resp["Runtime"] == "nodejs20.x"
    assert resp["EphemeralStorage"] == {"Size": 10240}
    assert resp["Role"] == f"arn:aws:iam::{ACCOUNT}:role/other-role"
    assert resp["MemorySize"] == 512
    wait_updated(lambda_client, name)

    # An empty map clears the variables.
    resp = lambda_client.update_function_configuration(FunctionName=name, Environment={"Variables": {}})
    assert not resp.get("Environment", {}).get("Variables")
    final = wait_updated(lambda_client, name)
    assert not final.get("Environment", {}).get("Variables")
    assert final["Description"] == "changed" and final["MemorySize"] == 512 and final["Runtime"] == "nodejs20.x"


def test_revision_id_changes_on_every_change(lambda_client):
    name = unique_name()
    seen = [create_function(lambda_client, name)["RevisionId"]]
    seen.append(lambda_client.get_function_configuration(FunctionName=name)["RevisionId"])
    for i in range(3):
        r = lambda_client.update_function_configuration(FunctionName=name, Description=f"d{i}")
        seen.append(r["RevisionId"])
        seen.append(wait_updated(lambda_client, name)["RevisionId"])
        r = lambda_client.update_function_code(FunctionName=name, ZipFile=python_zip())
        seen.append(r["RevisionId"])
        seen.append(wait_updated(lambda_client, name)["RevisionId"])
    # Each mutation yields a RevisionId never seen before (state transitions may add more).
    mutation_revs = seen[2::2]
    assert len(set(mutation_revs)) == len(mutation_revs), seen
    assert seen[0] not in mutation_revs


# --------------------------------------------------------------------------------------
# Waiters
# --------------------------------------------------------------------------------------


def test_boto3_waiters(lambda_client):
    name = unique_name()
    lambda_client.create_function(**create_kwargs(name))
    lambda_client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    lambda_client.get_waiter("function_active").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    lambda_client.get_waiter("function_exists").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    lambda_client.update_function_code(FunctionName=name, ZipFile=python_zip())
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    lambda_client.update_function_configuration(FunctionName=name, MemorySize=256)
    lambda_client.get_waiter("function_updated").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    cfg = lambda_client.get_function_configuration(FunctionName=name)
    assert cfg["State"] == "Active" and cfg["LastUpdateStatus"] == "Successful" and cfg["MemorySize"] == 256


# --------------------------------------------------------------------------------------
# DeleteFunction
# --------------------------------------------------------------------------------------


def test_delete_function(lambda_client):
    name = unique_name()
    first = create_function(lambda_client, name)
    resp = lambda_client.delete_function(FunctionName=name)
    assert http_status(resp) in (200, 204)
    with pytest.raises(ClientError) as ei:
        lambda_client.get_function(FunctionName=name)
    assert error_code(ei.value) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as ei:
        lambda_client.get_function_configuration(FunctionName=name)
    assert error_code(ei.value) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as ei:
        lambda_client.delete_function(FunctionName=name)
    assert error_code(ei.value) == "ResourceNotFoundException"
    assert http_status(ei.value) == 404
    names = {f["FunctionName"] for p in lambda_client.get_paginator("list_functions").paginate() for f in p["Functions"]}
    assert name not in names
    # The name is free again, and the new function is a different one.
    z = python_zip()
    second = create_function(lambda_client, name, z)
    assert second["CodeSha256"] == sha256_b64(z)
    assert second["RevisionId"] != first["RevisionId"]
    assert lambda_client.get_function(FunctionName=name).get("Tags") in (None, {})


def test_update_missing_function_is_404(lambda_client):
    name = unique_name("missing")
    for call in (
        lambda: lambda_client.update_function_code(FunctionName=name, ZipFile=python_zip()),
        lambda: lambda_client.update_function_configuration(FunctionName=name, MemorySize=256),
    ):
        with pytest.raises(ClientError) as ei:
            call()
        assert error_code(ei.value) == "ResourceNotFoundException"
        assert http_status(ei.value) == 404
    with pytest.raises(ClientError):
        lambda_client.get_function(FunctionName=name)


# --------------------------------------------------------------------------------------
# ListFunctions
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def five_functions(lambda_client):
    prefix = unique_name("page")
    names = [f"{prefix}-{i}" for i in range(5)]
    for n in names:
        create_function(lambda_client, n, wait=False)
    for n in names:
        wait_active(lambda_client, n)
    return names


def test_list_functions_marker_pagination(lambda_client, five_functions):
    seen: list[str] = []
    marker = None
    pages = 0
    while True:
        kw = {"MaxItems": 2}
        if marker:
            kw["Marker"] = marker
        page = lambda_client.list_functions(**kw)
        pages += 1
        assert pages < 10_000
        fns = page["Functions"]
        assert len(fns) <= 2
        seen.extend(f["FunctionName"] for f in fns)
        marker = page.get("NextMarker")
        if not marker:
            break
        assert fns, "a page with a NextMarker must not be empty"
    assert len(seen) == len(set(seen)), "pagination returned duplicates"
    assert set(five_functions) <= set(seen)
    assert pages >= 3


def test_list_functions_paginator(lambda_client, five_functions):
    pages = list(lambda_client.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 2}))
    names = [f["FunctionName"] for p in pages for f in p["Functions"]]
    assert len(names) == len(set(names))
    assert set(five_functions) <= set(names)
    assert all(len(p["Functions"]) <= 2 for p in pages)
    # MaxItems through the paginator stops early and hands out a resume token.
    first = lambda_client.get_paginator("list_functions").paginate(PaginationConfig={"MaxItems": 3, "PageSize": 2}).build_full_result()
    assert len(first["Functions"]) == 3
    assert first.get("NextToken")
    rest = lambda_client.get_paginator("list_functions").paginate(
        PaginationConfig={"PageSize": 2, "StartingToken": first["NextToken"]}
    ).build_full_result()
    all_names = [f["FunctionName"] for f in first["Functions"]] + [f["FunctionName"] for f in rest["Functions"]]
    assert sorted(all_names) == sorted(names)


def test_list_functions_items_are_configurations(lambda_client, five_functions):
    by_name = {f["FunctionName"]: f for f in lambda_client.get_paginator("list_functions").paginate().build_full_result()["Functions"]}
    for n in five_functions:
        item = by_name[n]
        assert item["FunctionArn"] == full_arn(n)
        assert item["Runtime"] == "python3.11"
        assert item["Version"] == "$LATEST"
        assert "Code" not in item
        conf = lambda_client.get_function_configuration(FunctionName=n)
        assert item["CodeSha256"] == conf["CodeSha256"]
        assert item["RevisionId"] == conf["RevisionId"]


def test_list_functions_default_page_is_at_most_50(lambda_client):
    page = lambda_client.list_functions(MaxItems=1000)
    assert len(page["Functions"]) <= 50


# --------------------------------------------------------------------------------------
# Name forms
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["name", "arn", "partial"])
def test_function_name_forms(lambda_client, form):
    name = unique_name(form)
    ref = {"name": name, "arn": full_arn(name), "partial": partial_arn(name)}[form]
    create_function(lambda_client, name)
    assert lambda_client.get_function(FunctionName=ref)["Configuration"]["FunctionName"] == name
    assert lambda_client.get_function_configuration(FunctionName=ref)["FunctionArn"] == full_arn(name)
    r = lambda_client.update_function_configuration(FunctionName=ref, Description=f"via {form}")
    assert r["FunctionName"] == name and r["Description"] == f"via {form}"
    wait_updated(lambda_client, name)
    z = python_zip()
    assert lambda_client.update_function_code(FunctionName=ref, ZipFile=z)["CodeSha256"] == sha256_b64(z)
    wait_updated(lambda_client, name)
    versions = lambda_client.list_versions_by_function(FunctionName=ref)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST"]
    assert "ReservedConcurrentExecutions" not in lambda_client.get_function_concurrency(FunctionName=ref)
    assert lambda_client.get_function_code_signing_config(FunctionName=ref)["FunctionName"] == name
    lambda_client.get_runtime_management_config(FunctionName=ref)
    assert lambda_client.get_function_recursion_config(FunctionName=ref)["RecursiveLoop"] == "Terminate"
    assert http_status(lambda_client.delete_function(FunctionName=ref)) in (200, 204)
    with pytest.raises(ClientError) as ei:
        lambda_client.get_function(FunctionName=name)
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_arn_of_another_account_or_region_does_not_resolve(lambda_client):
    name = unique_name()
    create_function(lambda_client, name)
    for ref in (
        f"arn:aws:lambda:{REGION}:111111111111:function:{name}",
        f"111111111111:function:{name}",
        f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:{name}",
    ):
        with pytest.raises(ClientError) as ei:
            lambda_client.get_function(FunctionName=ref)
        assert 400 <= http_status(ei.value) < 500, ref
        assert error_code(ei.value) in ("ResourceNotFoundException", "InvalidParameterValueException", "AccessDeniedException"), ref
    # Our own function is still intact.
    assert lambda_client.get_function(FunctionName=name)["Configuration"]["FunctionName"] == name


# --------------------------------------------------------------------------------------
# Tags
# --------------------------------------------------------------------------------------


def test_tags_roundtrip(lambda_client):
    name = unique_name()
    arn = full_arn(name)
    create_function(lambda_client, name, Tags={"a": "1"})
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"a": "1"}
    resp = lambda_client.tag_resource(Resource=arn, Tags={"b": "2", "a": "one"})
    assert http_status(resp) in (200, 204)
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"a": "one", "b": "2"}
    assert lambda_client.get_function(FunctionName=name)["Tags"] == {"a": "one", "b": "2"}
    resp = lambda_client.untag_resource(Resource=arn, TagKeys=["a", "does-not-exist"])
    assert http_status(resp) in (200, 204)
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {"b": "2"}
    lambda_client.untag_resource(Resource=arn, TagKeys=["b"])
    assert lambda_client.list_tags(Resource=arn)["Tags"] == {}


def test_tag_operations_on_missing_function(lambda_client):
    arn = full_arn(unique_name("missing"))
    for call in (
        lambda: lambda_client.tag_resource(Resource=arn, Tags={"a": "1"}),
        lambda: lambda_client.list_tags(Resource=arn),
        lambda: lambda_client.untag_resource(Resource=arn, TagKeys=["a"]),
    ):
        with pytest.raises(ClientError) as ei:
            call()
        assert error_code(ei.value) == "ResourceNotFoundException"
        assert http_status(ei.value) == 404


# --------------------------------------------------------------------------------------
# Read-only calls that infrastructure tools (Terraform) make
# --------------------------------------------------------------------------------------


def test_terraform_read_calls(lambda_client):
    name = unique_name()
    create_function(lambda_client, name)
    csc = lambda_client.get_function_code_signing_config(FunctionName=name)
    assert http_status(csc) == 200
    assert csc["FunctionName"] == name
    assert not csc.get("CodeSigningConfigArn")

    conc = lambda_client.get_function_concurrency(FunctionName=name)
    assert http_status(conc) == 200
    assert {k: v for k, v in conc.items() if k != "ResponseMetadata"} == {}

    rmc = lambda_client.get_runtime_management_config(FunctionName=name)
    assert http_status(rmc) == 200
    assert rmc.get("UpdateRuntimeOn", "Auto") == "Auto"
    if "FunctionArn" in rmc:
        assert rmc["FunctionArn"].startswith(full_arn(name))

    rec = lambda_client.get_function_recursion_config(FunctionName=name)
    assert rec["RecursiveLoop"] == "Terminate"

    versions = lambda_client.list_versions_by_function(FunctionName=name)
    assert [v["Version"] for v in versions["Versions"]] == ["$LATEST"]
    assert versions["Versions"][0]["FunctionName"] == name
    assert versions["Versions"][0]["CodeSha256"] == lambda_client.get_function_configuration(FunctionName=name)["CodeSha256"]
    assert not versions.get("NextMarker")


@pytest.mark.parametrize(
    "op",
    [
        "get_function_code_signing_config",
        "get_function_concurrency",
        "get_runtime_management_config",
        "get_function_recursion_config",
        "list_versions_by_function",
    ],
)
def test_read_calls_on_missing_function_are_404(lambda_client, op):
    with pytest.raises(ClientError) as ei:
        getattr(lambda_client, op)(FunctionName=unique_name("missing"))
    assert error_code(ei.value) == "ResourceNotFoundException"
    assert http_status(ei.value) == 404


# --------------------------------------------------------------------------------------
# GetAccountSettings
# --------------------------------------------------------------------------------------


def test_account_settings_shape(lambda_client):
    s = lambda_client.get_account_settings()
    assert http_status(s) == 200
    lim = s["AccountLimit"]
    assert lim["CodeSizeUnzipped"] == 262144000
    assert lim["CodeSizeZipped"] == 52428800
    for k in ("TotalCodeSize", "ConcurrentExecutions", "UnreservedConcurrentExecutions"):
        assert isinstance(lim[k], int) and lim[k] > 0, k
    assert lim["UnreservedConcurrentExecutions"] <= lim["ConcurrentExecutions"]
    use = s["AccountUsage"]
    assert isinstance(use["FunctionCount"], int) and use["FunctionCount"] >= 0
    assert isinstance(use["TotalCodeSize"], int) and use["TotalCodeSize"] >= 0


def test_account_usage_tracks_functions(lambda_client):
    def usage():
        u = lambda_client.get_account_settings()["AccountUsage"]
        return u["FunctionCount"], u["TotalCodeSize"]

    count0, size0 = usage()
    listed = lambda_client.get_paginator("list_functions").paginate().build_full_result()["Functions"]
    assert count0 == len(listed)
    # TotalCodeSize counts every stored deployment package and layer archive, as on Lambda:
    # all versions of every function, plus every layer version.
    every_version = lambda_client.get_paginator("list_functions").paginate(FunctionVersion="ALL").build_full_result()["Functions"]
    layer_sizes = [
        lambda_client.get_layer_version(LayerName=layer["LayerName"], VersionNumber=v["Version"])["Content"]["CodeSize"]
        for layer in lambda_client.get_paginator("list_layers").paginate().build_full_result()["Layers"]
        for v in lambda_client.get_paginator("list_layer_versions").paginate(LayerName=layer["LayerName"]).build_full_result()["LayerVersions"]
    ]
    assert size0 == sum(f["CodeSize"] for f in every_version) + sum(layer_sizes)

    name = unique_name()
    z1 = python_zip()
    create_function(lambda_client, name, z1)
    assert usage() == (count0 + 1, size0 + len(z1))

    z2 = python_zip(extra={"pad.txt": os.urandom(5000)})
    lambda_client.update_function_code(FunctionName=name, ZipFile=z2)
    wait_updated(lambda_client, name)
    assert usage() == (count0 + 1, size0 + len(z2))

    lambda_client.delete_function(FunctionName=name)
    assert usage() == (count0, size0)


# --------------------------------------------------------------------------------------
# Wire details
# --------------------------------------------------------------------------------------


def test_responses_carry_request_id(server, lambda_client):
    ok = lambda_client.list_functions(MaxItems=1)
    assert ok["ResponseMetadata"].get("RequestId")
    with pytest.raises(ClientError) as ei:
        lambda_client.get_function(FunctionName=unique_name("missing"))
    assert ei.value.response["ResponseMetadata"].get("RequestId")
    ids = {lambda_client.list_functions(MaxItems=1)["ResponseMetadata"]["RequestId"] for _ in range(3)}
    assert len(ids) == 3, "request ids must be unique per request"
