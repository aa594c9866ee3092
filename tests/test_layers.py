"""Layers: PublishLayerVersion/GetLayerVersion/GetLayerVersionByArn/ListLayers/
ListLayerVersions/DeleteLayerVersion, functions that use layers, and what the sandbox sees
in `/opt` (python modules, site-packages, `/opt/bin` on PATH, list-order overrides, a
custom runtime's bootstrap from a layer, read-only).

Every test publishes its own uniquely named layers on the shared server.
"""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from botocore.exceptions import ClientError

from alonzo_helpers import (
    expect_error,

    ACCOUNT,
    REGION,
    big_moderate_zip,
    create_function,
    error_code,
    http_status,
    make_zip,
    poll_until,
    sha256_b64,
    symlink_zip,
    unique_name,
    wait_updated,
    zeros_zip,
)

INVALID_PARAM = {"InvalidParameterValueException", "ValidationException"}
DENIED = {"EROFS", "EACCES", "EPERM"}

# --------------------------------------------------------------------------------------
# Zips
# --------------------------------------------------------------------------------------


def exe(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o100755 << 16
    info.create_system = 3
    return info


def layer_zip(who: str, *, tool: bool = True, extra: dict | None = None) -> bytes:
    entries = [
        ("python/common.py", f"WHO = {who!r}\n"),
        (f"python/only_{who.lower()}.py", f"WHO = {who!r}\n"),
        ("python/lib/python3.11/site-packages/sitemod.py", f"SITE = 'site-{who}'\n"),
        ("shared/which.txt", who),
    ]
    if tool:
        entries.append((exe("bin/layertool"), f"#!/bin/sh\necho \"tool-{who} $*\"\n"))
    entries += list((extra or {}).items())
    return make_zip(entries)


PROBE = r'''
import errno
import importlib
import os
import subprocess
import sys


def handler(event, context):
    action = event.get("action")
    if action == "import":
        try:
            mod = importlib.import_module(event["module"])
        except Exception as e:
            return {"err": "%s: %s" % (type(e).__name__, e)}
        return {"file": getattr(mod, "__file__", None), "value": getattr(mod, event["attr"], None)}
    if action == "read":
        try:
            with open(event["path"]) as fh:
                return {"ok": fh.read()}
        except Exception as e:
            return {"err": "%s: %s" % (type(e).__name__, e)}
    if action == "run":
        try:
            p = subprocess.run(event["cmd"], capture_output=True, text=True, timeout=5)
        except Exception as e:
            return {"exc": "%s: %s" % (type(e).__name__, e)}
        return {"rc": p.returncode, "out": p.stdout, "err": p.stderr}
    if action == "env":
        return {"PATH": os.environ.get("PATH", ""), "sys_path": sys.path, "LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH", "")}
    if action == "write":
        out = {}
        for path in event["paths"]:
            try:
                with open(path, "w") as fh:
                    fh.write("x")
                out[path] = "written"
            except OSError as e:
                out[path] = errno.errorcode.get(e.errno, str(e.errno))
        try:
            os.mkdir("/opt/newdir")
            out["mkdir"] = "made"
        except OSError as e:
            out["mkdir"] = errno.errorcode.get(e.errno, str(e.errno))
        return out
    if action == "list":
        found = []
        for root, dirs, files in os.walk("/opt"):
            for f in files:
                found.append(os.path.relpath(os.path.join(root, f), "/opt"))
        return sorted(found)
    raise ValueError(action)
'''


def probe_zip() -> bytes:
    return make_zip([("app.py", PROBE)])


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def publish_layer(client, name: str, zip_bytes: bytes, **kw) -> dict:
    resp = client.publish_layer_version(LayerName=name, Content={"ZipFile": zip_bytes}, **kw)
    assert http_status(resp) == 201, resp["ResponseMetadata"]
    return resp


def new_probe(client, layers: list[str] | None = None, **kw) -> str:
    name = unique_name("lyrfn")
    kw.setdefault("Timeout", 10)
    if layers is not None:
        kw["Layers"] = layers
    create_function(client, name, probe_zip(), **kw)
    return name


def probe(client, name: str, event: dict, **kw):
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event).encode(), **kw)
    body = resp["Payload"].read()
    assert resp["StatusCode"] == 200, resp
    assert "FunctionError" not in resp, f"probe {event} failed: {body[:3000]!r}"
    return json.loads(body)


def layer_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{name}"


def all_layers(client, **kw) -> list[dict]:
    out = []
    for page in client.get_paginator("list_layers").paginate(**kw):
        out.extend(page["Layers"])
    return out


def all_layer_versions(client, name: str, **kw) -> list[dict]:
    out = []
    for page in client.get_paginator("list_layer_versions").paginate(LayerName=name, **kw):
        out.extend(page["LayerVersions"])
    return out


def version_fields(v: dict) -> dict:
    keep = ("LayerArn", "LayerVersionArn", "Description", "CreatedDate", "Version", "CompatibleRuntimes",
            "LicenseInfo", "CompatibleArchitectures")
    return {k: v.get(k) for k in keep}


# --------------------------------------------------------------------------------------
# Control plane
# --------------------------------------------------------------------------------------


def test_publish_layer_version(lambda_client, server):
    name = unique_name("lyr")
    z = layer_zip("A")
    resp = publish_layer(lambda_client, name, z, Description="shared helpers", CompatibleRuntimes=["python3.11", "nodejs20.x"],
                         CompatibleArchitectures=["x86_64"], LicenseInfo="MIT")
    assert resp["LayerArn"] == layer_arn(name)
    assert resp["LayerVersionArn"] == layer_arn(name) + ":1"
    assert resp["Version"] == 1
    assert resp["Description"] == "shared helpers"
    assert sorted(resp["CompatibleRuntimes"]) == ["nodejs20.x", "python3.11"]
    assert resp["CompatibleArchitectures"] == ["x86_64"]
    assert resp["LicenseInfo"] == "MIT"
    created = dt.datetime.fromisoformat(resp["CreatedDate"].replace("Z", "+00:00").replace("+0000", "+00:00"))
    assert abs((dt.datetime.now(dt.timezone.utc) - created).total_seconds()) < 300, resp["CreatedDate"]
    content = resp["Content"]
    assert content["CodeSha256"] == sha256_b64(z)
    assert content["CodeSize"] == len(z)
    loc = content["Location"]
    parts = urlsplit(loc)
    assert parts.scheme == "http" and parts.hostname == "127.0.0.1" and parts.port == server.port, loc
    r = requests.get(loc, timeout=30)  # unsigned, like a pre-signed S3 URL
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.content == z

    z2 = layer_zip("B")
    second = publish_layer(lambda_client, name, z2)
    assert second["Version"] == 2
    assert second["LayerVersionArn"] == layer_arn(name) + ":2"
    assert second["Content"]["CodeSha256"] == sha256_b64(z2)
    assert requests.get(second["Content"]["Location"], timeout=30).content == z2


def test_publish_layer_version_rejects_bad_input(raw_client):
    name = unique_name("lyrbad")
    for bad_name in ("has space", "dot.ted", "a" * 141):
        err = expect_error(INVALID_PARAM, raw_client.publish_layer_version, LayerName=bad_name,
                           Content={"ZipFile": layer_zip("A")})
        assert http_status(err) == 400, bad_name
    err = expect_error(INVALID_PARAM, raw_client.publish_layer_version, LayerName=name, Content={"ZipFile": b"not a zip at all"})
    assert http_status(err) == 400
    err = expect_error(INVALID_PARAM | {"InvalidRequestContentException"}, raw_client.publish_layer_version, LayerName=name, Content={})
    assert http_status(err) == 400
    assert not _layer_listable(raw_client, name) or all_layer_versions(raw_client, name) == [], "a refused publish made a version"
    # The name is still free: the first real publish is version 1.
    assert publish_layer(raw_client, name, layer_zip("A"))["Version"] == 1


def test_publish_layer_version_validates_fields(raw_client):
    name = unique_name("lyrfld")
    for bad in ({"CompatibleArchitectures": ["sparc"]}, {"CompatibleRuntimes": ["python3.11"] * 16},
                {"LicenseInfo": "x" * 513}, {"Description": "x" * 257}, {"CompatibleRuntimes": ["python9.99-nope"]}):
        err = expect_error(INVALID_PARAM, raw_client.publish_layer_version, LayerName=name, Content={"ZipFile": layer_zip("A")}, **bad)
        assert http_status(err) == 400, bad


def _layer_listable(client, name: str) -> bool:
    try:
        client.list_layer_versions(LayerName=name)
        return True
    except ClientError as e:
        assert error_code(e) == "ResourceNotFoundException", e.response
        return False


def test_get_layer_version_and_by_arn(lambda_client):
    name = unique_name("lyrget")
    pub = publish_layer(lambda_client, name, layer_zip("A"), Description="d", CompatibleRuntimes=["python3.11"])
    got = lambda_client.get_layer_version(LayerName=name, VersionNumber=1)
    assert version_fields(got) == version_fields(pub)
    assert got["Content"]["CodeSha256"] == pub["Content"]["CodeSha256"]
    assert got["Content"]["CodeSize"] == pub["Content"]["CodeSize"]
    assert requests.get(got["Content"]["Location"], timeout=30).content == layer_zip("A")
    by_arn = lambda_client.get_layer_version_by_arn(Arn=pub["LayerVersionArn"])
    assert version_fields(by_arn) == version_fields(pub)
    assert by_arn["Content"]["CodeSha256"] == pub["Content"]["CodeSha256"]
    # GetLayerVersion by the layer ARN as LayerName.
    assert lambda_client.get_layer_version(LayerName=layer_arn(name), VersionNumber=1)["Version"] == 1

    expect_error("ResourceNotFoundException", lambda_client.get_layer_version, LayerName=name, VersionNumber=2, status=404)
    expect_error("ResourceNotFoundException", lambda_client.get_layer_version, LayerName=unique_name("nolyr"),
                 VersionNumber=1, status=404)
    expect_error("ResourceNotFoundException", lambda_client.get_layer_version_by_arn, Arn=layer_arn(name) + ":7", status=404)
    expect_error("ResourceNotFoundException", lambda_client.get_layer_version_by_arn,
                 Arn=layer_arn(unique_name("nolyr")) + ":1", status=404)


def test_layer_versions_list_and_delete(lambda_client):
    name = unique_name("lyrdel")
    for i in range(1, 4):
        assert publish_layer(lambda_client, name, layer_zip(f"V{i}"), Description=f"version {i}")["Version"] == i
    listed = all_layer_versions(lambda_client, name)
    assert sorted(v["Version"] for v in listed) == [1, 2, 3]
    for v in listed:
        assert v["LayerVersionArn"] == layer_arn(name) + f":{v['Version']}"
        assert v["Description"] == f"version {v['Version']}"

    resp = lambda_client.delete_layer_version(LayerName=name, VersionNumber=3)
    assert http_status(resp) == 204
    expect_error("ResourceNotFoundException", lambda_client.get_layer_version, LayerName=name, VersionNumber=3, status=404)
    expect_error("ResourceNotFoundException", lambda_client.get_layer_version_by_arn, Arn=layer_arn(name) + ":3", status=404)
    assert sorted(v["Version"] for v in all_layer_versions(lambda_client, name)) == [1, 2]
    # Version numbers are never reused, even for the number just deleted.
    again = publish_layer(lambda_client, name, layer_zip("V4"))
    assert again["Version"] == 4, f"after deleting version 3 the next publish got {again['Version']}"
    lambda_client.delete_layer_version(LayerName=name, VersionNumber=1)
    lambda_client.delete_layer_version(LayerName=name, VersionNumber=2)
    lambda_client.delete_layer_version(LayerName=name, VersionNumber=4)
    assert not _layer_listable(lambda_client, name) or all_layer_versions(lambda_client, name) == []
    assert name not in {l["LayerName"] for l in all_layers(lambda_client)}, "a layer without versions is still listed"
    assert publish_layer(lambda_client, name, layer_zip("V5"))["Version"] == 5


def test_list_layers_and_compatibility_filters(lambda_client):
    py, node = unique_name("lyrpy"), unique_name("lyrnode")
    publish_layer(lambda_client, py, layer_zip("A"), CompatibleRuntimes=["python3.11"], CompatibleArchitectures=["x86_64"])
    latest_py = publish_layer(lambda_client, py, layer_zip("B"), CompatibleRuntimes=["python3.11"],
                              CompatibleArchitectures=["x86_64"], Description="newest")
    publish_layer(lambda_client, node, layer_zip("C"), CompatibleRuntimes=["nodejs20.x"], CompatibleArchitectures=["arm64"])

    layers = {l["LayerName"]: l for l in all_layers(lambda_client)}
    assert py in layers and node in layers
    assert layers[py]["LayerArn"] == layer_arn(py)
    lmv = layers[py]["LatestMatchingVersion"]
    assert lmv["Version"] == 2 and lmv["LayerVersionArn"] == latest_py["LayerVersionArn"]
    assert lmv["Description"] == "newest"

    for_py = {l["LayerName"] for l in all_layers(lambda_client, CompatibleRuntime="python3.11")}
    assert py in for_py and node not in for_py
    for_node = {l["LayerName"] for l in all_layers(lambda_client, CompatibleRuntime="nodejs20.x")}
    assert node in for_node and py not in for_node
    for_arm = {l["LayerName"] for l in all_layers(lambda_client, CompatibleArchitecture="arm64")}
    assert node in for_arm and py not in for_arm

    assert sorted(v["Version"] for v in all_layer_versions(lambda_client, py, CompatibleRuntime="python3.11")) == [1, 2]
    assert all_layer_versions(lambda_client, py, CompatibleRuntime="nodejs20.x") == []

    # MaxItems pagination of ListLayers neither loses nor repeats layers.
    names, marker = [], None
    for _ in range(1000):
        kw = {"MaxItems": 2}
        if marker:
            kw["Marker"] = marker
        page = lambda_client.list_layers(**kw)
        assert len(page["Layers"]) <= 2
        names += [l["LayerName"] for l in page["Layers"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert len(names) == len(set(names)), "ListLayers pages repeat layers"
    assert py in names and node in names

    # ListLayerVersions pages too (newest first, like Lambda, is not required here).
    publish_layer(lambda_client, py, layer_zip("C"), CompatibleRuntimes=["python3.11"])
    versions, marker = [], None
    for _ in range(10):
        kw = {"LayerName": py, "MaxItems": 1}
        if marker:
            kw["Marker"] = marker
        page = lambda_client.list_layer_versions(**kw)
        assert len(page["LayerVersions"]) <= 1, f"ListLayerVersions(MaxItems=1) returned {len(page['LayerVersions'])} versions"
        versions += [v["Version"] for v in page["LayerVersions"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert sorted(versions) == [1, 2, 3], versions


# --------------------------------------------------------------------------------------
# Functions using layers
# --------------------------------------------------------------------------------------


def test_function_layers_configuration(lambda_client):
    la, lb = unique_name("lyrca"), unique_name("lyrcb")
    za, zb = layer_zip("A"), layer_zip("B", extra={"python/big.py": "X = 1\n" * 500})
    a = publish_layer(lambda_client, la, za)["LayerVersionArn"]
    b = publish_layer(lambda_client, lb, zb)["LayerVersionArn"]
    name = unique_name("lyrcfg")
    resp = lambda_client.create_function(FunctionName=name, Runtime="python3.11", Role=f"arn:aws:iam::{ACCOUNT}:role/r",
                                         Handler="app.handler", Code={"ZipFile": probe_zip()}, Layers=[a, b])
    assert [(l["Arn"], l["CodeSize"]) for l in resp["Layers"]] == [(a, len(za)), (b, len(zb))], resp.get("Layers")
    poll_until(lambda: lambda_client.get_function_configuration(FunctionName=name)["State"] == "Active", 30)
    cfg = lambda_client.get_function_configuration(FunctionName=name)
    assert [(l["Arn"], l["CodeSize"]) for l in cfg["Layers"]] == [(a, len(za)), (b, len(zb))]
    assert [l["Arn"] for l in lambda_client.get_function(FunctionName=name)["Configuration"]["Layers"]] == [a, b]

    # UpdateFunctionConfiguration replaces the whole list, in the given order.
    r = lambda_client.update_function_configuration(FunctionName=name, Layers=[b])
    assert [l["Arn"] for l in r["Layers"]] == [b]
    wait_updated(lambda_client, name)
    r = lambda_client.update_function_configuration(FunctionName=name, Layers=[b, a])
    assert [l["Arn"] for l in r["Layers"]] == [b, a]
    wait_updated(lambda_client, name)
    # Other updates keep the layers.
    r = lambda_client.update_function_configuration(FunctionName=name, MemorySize=256)
    assert [l["Arn"] for l in r["Layers"]] == [b, a]
    wait_updated(lambda_client, name)
    r = lambda_client.update_function_configuration(FunctionName=name, Layers=[])
    assert not r.get("Layers"), r.get("Layers")
    assert not wait_updated(lambda_client, name).get("Layers")


def test_invalid_layer_references(raw_client):
    c = raw_client
    lname = unique_name("lyrinv")
    good = publish_layer(c, lname, layer_zip("A"))["LayerVersionArn"]
    others = [publish_layer(c, unique_name("lyrmany"), layer_zip("A"))["LayerVersionArn"] for _ in range(5)]
    bad_lists = {
        "missing version": [layer_arn(lname) + ":9"],
        "missing layer": [layer_arn(unique_name("nolyr")) + ":1"],
        "unversioned layer ARN": [layer_arn(lname)],
        "not an ARN": ["just-a-name"],
        "six layers": others + [good],
    }
    for what, layers in bad_lists.items():
        name = unique_name("lyrinvf")
        with pytest.raises(ClientError) as ei:
            c.create_function(FunctionName=name, Runtime="python3.11", Role=f"arn:aws:iam::{ACCOUNT}:role/r",
                              Handler="app.handler", Code={"ZipFile": probe_zip()}, Layers=layers)
        code = error_code(ei.value)
        assert code in INVALID_PARAM | ({"ResourceNotFoundException"} if what.startswith("missing") else set()), (what, ei.value.response)
        assert 400 <= http_status(ei.value) < 500, what
        with pytest.raises(ClientError) as ei:
            c.get_function(FunctionName=name)
        assert error_code(ei.value) == "ResourceNotFoundException", f"{what}: the function was created anyway"

    # The same on UpdateFunctionConfiguration, which leaves the configuration unchanged.
    name = new_probe(c, layers=[good])
    before = c.get_function_configuration(FunctionName=name)
    for what, layers in bad_lists.items():
        with pytest.raises(ClientError) as ei:
            c.update_function_configuration(FunctionName=name, Layers=layers)
        assert 400 <= http_status(ei.value) < 500, what
        after = c.get_function_configuration(FunctionName=name)
        assert after["Layers"] == before["Layers"] and after["RevisionId"] == before["RevisionId"], what
    # Five is fine.
    assert len(c.update_function_configuration(FunctionName=name, Layers=others)["Layers"]) == 5


def test_python_layer_module_site_packages_and_bin(lambda_client):
    lname = unique_name("lyrpy")
    arn = publish_layer(lambda_client, lname, layer_zip("A"), CompatibleRuntimes=["python3.11"])["LayerVersionArn"]
    name = new_probe(lambda_client, layers=[arn])
    out = probe(lambda_client, name, {"action": "import", "module": "common", "attr": "WHO"})
    assert out.get("value") == "A", out
    assert out["file"] == "/opt/python/common.py", out
    out = probe(lambda_client, name, {"action": "import", "module": "sitemod", "attr": "SITE"})
    assert out.get("value") == "site-A", out
    assert out["file"] == "/opt/python/lib/python3.11/site-packages/sitemod.py", out
    env = probe(lambda_client, name, {"action": "env"})
    assert "/opt/bin" in env["PATH"].split(":"), env["PATH"]
    assert "/opt/python" in env["sys_path"], env["sys_path"]
    out = probe(lambda_client, name, {"action": "run", "cmd": ["layertool", "hello"]})
    assert out.get("rc") == 0 and out.get("out") == "tool-A hello\n", out
    out = probe(lambda_client, name, {"action": "read", "path": "/opt/shared/which.txt"})
    assert out == {"ok": "A"}
    files = probe(lambda_client, name, {"action": "list"})
    assert "python/common.py" in files and "bin/layertool" in files, files

    # Without layers, none of it is there.
    plain = new_probe(lambda_client)
    out = probe(lambda_client, plain, {"action": "import", "module": "common", "attr": "WHO"})
    assert "err" in out, f"a function without layers imported a layer's module: {out}"
    assert probe(lambda_client, plain, {"action": "list"}) == []


def test_layer_order_later_overrides_earlier(lambda_client):
    a = publish_layer(lambda_client, unique_name("lyrorda"), layer_zip("A"))["LayerVersionArn"]
    b = publish_layer(lambda_client, unique_name("lyrordb"), layer_zip("B"))["LayerVersionArn"]
    name = new_probe(lambda_client, layers=[a, b])

    def seen():
        return (
            probe(lambda_client, name, {"action": "import", "module": "common", "attr": "WHO"}).get("value"),
            probe(lambda_client, name, {"action": "read", "path": "/opt/shared/which.txt"}).get("ok"),
            probe(lambda_client, name, {"action": "run", "cmd": ["layertool"]}).get("out"),
            probe(lambda_client, name, {"action": "import", "module": "sitemod", "attr": "SITE"}).get("value"),
        )

    assert seen() == ("B", "B", "tool-B \n", "site-B"), "with Layers=[A, B] the later layer B must win"
    # Files only one layer has are all there (directories merge).
    assert probe(lambda_client, name, {"action": "import", "module": "only_a", "attr": "WHO"}).get("value") == "A"
    assert probe(lambda_client, name, {"action": "import", "module": "only_b", "attr": "WHO"}).get("value") == "B"

    lambda_client.update_function_configuration(FunctionName=name, Layers=[b, a])
    wait_updated(lambda_client, name)
    assert seen() == ("A", "A", "tool-A \n", "site-A"), "after reordering to [B, A] layer A must win"

    lambda_client.update_function_configuration(FunctionName=name, Layers=[])
    wait_updated(lambda_client, name)
    assert probe(lambda_client, name, {"action": "list"}) == [], "layers removed from the configuration are still in /opt"


def test_opt_is_read_only(lambda_client):
    arn = publish_layer(lambda_client, unique_name("lyrro"), layer_zip("A"))["LayerVersionArn"]
    name = new_probe(lambda_client, layers=[arn])
    paths = ["/opt/x", "/opt/python/common.py", "/opt/bin/layertool", "/opt/shared/new.txt"]
    out = probe(lambda_client, name, {"action": "write", "paths": paths})
    for p in paths + ["mkdir"]:
        assert out[p] in DENIED, f"write to {p}: {out[p]}"
    assert probe(lambda_client, name, {"action": "read", "path": "/opt/shared/which.txt"}) == {"ok": "A"}
    assert probe(lambda_client, name, {"action": "run", "cmd": ["layertool", "still"]}).get("out") == "tool-A still\n"


def test_node_layer_module(lambda_client):
    z = make_zip([("nodejs/node_modules/layerlib/index.js", "module.exports = { who: 'node-layer' };\n")])
    arn = publish_layer(lambda_client, unique_name("lyrnode"), z, CompatibleRuntimes=["nodejs20.x"])["LayerVersionArn"]
    src = "const lib = require('layerlib');\nexports.handler = async () => ({ who: lib.who });\n"
    name = unique_name("lyrnodefn")
    create_function(lambda_client, name, make_zip([("index.js", src)]), Runtime="nodejs20.x", Handler="index.handler",
                    Layers=[arn], Timeout=10)
    assert probe(lambda_client, name, {}) == {"who": "node-layer"}


BOOTSTRAP = r'''#!/bin/bash
set -euo pipefail
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  HEADERS="$(mktemp)"
  EVENT_DATA=$(curl -sS -LD "$HEADERS" "$API/invocation/next")
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  rm -f "$HEADERS"
  RESPONSE="{\"from\":\"layer-bootstrap\",\"self\":\"$0\",\"echo\":$EVENT_DATA,\"handler\":\"${_HANDLER}\",\"task\":\"$(ls /var/task | tr '\n' ' ')\"}"
  curl -sS -X POST "$API/invocation/$REQUEST_ID/response" -d "$RESPONSE" >/dev/null
done
'''


def test_custom_runtime_bootstrap_from_layer(lambda_client):
    if not (Path("/usr/bin/curl").exists() and Path("/bin/bash").exists()):
        pytest.skip("needs /usr/bin/curl and /bin/bash on the host (they are bound into the sandbox)")
    runtime_layer = make_zip([(exe("bootstrap"), BOOTSTRAP)])
    arn = publish_layer(lambda_client, unique_name("lyrrt"), runtime_layer, CompatibleRuntimes=["provided.al2023"])["LayerVersionArn"]
    name = unique_name("lyrrtfn")
    create_function(lambda_client, name, make_zip([("function.sh", "echo unused\n")]), Runtime="provided.al2023",
                    Handler="function.handler", Layers=[arn], Timeout=10)
    for i in range(2):
        out = probe(lambda_client, name, {"n": i})
        assert out["from"] == "layer-bootstrap" and out["echo"] == {"n": i}, out
        assert out["self"] == "/opt/bootstrap", out
        assert out["handler"] == "function.handler"
        assert out["task"].split() == ["function.sh"], out


def test_deleted_layer_version_keeps_working_for_functions(lambda_client):
    lname = unique_name("lyrgone")
    arn = publish_layer(lambda_client, lname, layer_zip("A"))["LayerVersionArn"]
    name = new_probe(lambda_client, layers=[arn])
    lambda_client.delete_layer_version(LayerName=lname, VersionNumber=1)
    expect_error("ResourceNotFoundException", lambda_client.get_layer_version, LayerName=lname, VersionNumber=1)
    # The function's first invocation happens after the deletion.
    out = probe(lambda_client, name, {"action": "import", "module": "common", "attr": "WHO"})
    assert out.get("value") == "A", f"the function lost its deleted layer: {out}"
    assert probe(lambda_client, name, {"action": "run", "cmd": ["layertool", "x"]}).get("out") == "tool-A x\n"
    assert [l["Arn"] for l in lambda_client.get_function_configuration(FunctionName=name)["Layers"]] == [arn]
    # A new function cannot attach the deleted version.
    expect_error(INVALID_PARAM | {"ResourceNotFoundException"}, lambda_client.create_function, FunctionName=unique_name("lyrlate"),
                 Runtime="python3.11", Role=f"arn:aws:iam::{ACCOUNT}:role/r", Handler="app.handler",
                 Code={"ZipFile": probe_zip()}, Layers=[arn])
    # Publishing again gives the next number.
    assert publish_layer(lambda_client, lname, layer_zip("B"))["Version"] == 2


def test_published_function_version_keeps_its_layers(lambda_client):
    a = publish_layer(lambda_client, unique_name("lyrvera"), layer_zip("A"))["LayerVersionArn"]
    b = publish_layer(lambda_client, unique_name("lyrverb"), layer_zip("B"))["LayerVersionArn"]
    name = new_probe(lambda_client, layers=[a])
    v = lambda_client.publish_version(FunctionName=name)
    assert v["Version"] == "1" and [l["Arn"] for l in v["Layers"]] == [a]
    poll_until(lambda: lambda_client.get_function_configuration(FunctionName=name, Qualifier="1")["State"] == "Active", 30)
    lambda_client.update_function_configuration(FunctionName=name, Layers=[b])
    wait_updated(lambda_client, name)
    ask = {"action": "import", "module": "common", "attr": "WHO"}
    assert probe(lambda_client, name, ask).get("value") == "B"
    assert probe(lambda_client, name, ask, Qualifier="1").get("value") == "A", "version 1 lost its own layers"
    assert probe(lambda_client, name, ask).get("value") == "B"
    assert [l["Arn"] for l in lambda_client.get_function_configuration(FunctionName=name, Qualifier="1")["Layers"]] == [a]


def test_two_versions_of_one_layer_are_refused(lambda_client):
    """Lambda: "Two different versions of the same layer are not allowed to be referenced in
    the same function." """
    lname = unique_name("lyrtwo")
    one = publish_layer(lambda_client, lname, layer_zip("A"))["LayerVersionArn"]
    two = publish_layer(lambda_client, lname, layer_zip("B"))["LayerVersionArn"]
    name = unique_name("lyrtwofn")
    expect_error(INVALID_PARAM, lambda_client.create_function, FunctionName=name, Runtime="python3.11",
                 Role=f"arn:aws:iam::{ACCOUNT}:role/r", Handler="app.handler", Code={"ZipFile": probe_zip()}, Layers=[one, two])
    expect_error("ResourceNotFoundException", lambda_client.get_function, FunctionName=name)
    fn = new_probe(lambda_client, layers=[one])
    expect_error(INVALID_PARAM, lambda_client.update_function_configuration, FunctionName=fn, Layers=[two, one])
    assert [l["Arn"] for l in lambda_client.get_function_configuration(FunctionName=fn)["Layers"]] == [one]


def test_unzipped_size_limit_counts_layers(lambda_client):
    """Function plus layers may unzip to at most 250 MB (262144000 bytes)."""
    big = big_moderate_zip(140 << 20, entry_size=10 << 20)
    a = publish_layer(lambda_client, unique_name("lyrbiga"), big)["LayerVersionArn"]
    b = publish_layer(lambda_client, unique_name("lyrbigb"), big)["LayerVersionArn"]
    name = unique_name("lyrbig")
    expect_error(INVALID_PARAM | {"CodeStorageExceededException"}, lambda_client.create_function, FunctionName=name,
                 Runtime="python3.11", Role=f"arn:aws:iam::{ACCOUNT}:role/r", Handler="app.handler",
                 Code={"ZipFile": probe_zip()}, Layers=[a, b])
    expect_error("ResourceNotFoundException", lambda_client.get_function, FunctionName=name)
    fn = new_probe(lambda_client, layers=[a])
    expect_error(INVALID_PARAM | {"CodeStorageExceededException"}, lambda_client.update_function_configuration,
                 FunctionName=fn, Layers=[a, b])
    assert [l["Arn"] for l in lambda_client.get_function_configuration(FunctionName=fn)["Layers"]] == [a]
    out = probe(lambda_client, fn, {"action": "import", "module": "app", "attr": "__name__"})
    assert out.get("value") == "app", out


def test_layers_survive_restart(server_factory):
    srv = server_factory().start()
    c = srv.client()
    lname, kept = unique_name("lyrrst"), unique_name("lyrkeep")
    one = publish_layer(c, lname, layer_zip("A"), Description="first")
    publish_layer(c, lname, layer_zip("B"))
    other = publish_layer(c, kept, layer_zip("K"), Description="kept")
    fn = new_probe(c, layers=[one["LayerVersionArn"]])
    # Version 1 is deleted while the function uses it, before the function ever ran.
    c.delete_layer_version(LayerName=lname, VersionNumber=1)
    c.delete_layer_version(LayerName=lname, VersionNumber=2)

    srv.restart()
    c = srv.client()
    got = c.get_layer_version(LayerName=kept, VersionNumber=1)
    assert version_fields(got) == version_fields(other)
    assert got["Content"]["CodeSha256"] == other["Content"]["CodeSha256"]
    assert requests.get(got["Content"]["Location"], timeout=30).content == layer_zip("K")
    expect_error("ResourceNotFoundException", c.get_layer_version, LayerName=lname, VersionNumber=1)
    assert [l["Arn"] for l in c.get_function_configuration(FunctionName=fn)["Layers"]] == [one["LayerVersionArn"]]
    out = probe(c, fn, {"action": "import", "module": "common", "attr": "WHO"})
    assert out.get("value") == "A", f"after a restart the function lost its deleted layer: {out}"
    assert probe(c, fn, {"action": "run", "cmd": ["layertool", "r"]}).get("out") == "tool-A r\n"
    assert publish_layer(c, lname, layer_zip("C"))["Version"] == 3, "a deleted layer version's number was reused after a restart"


def _bad_layer_zips() -> dict:
    return {
        "garbage": b"definitely not a zip" * 10,
        "empty": b"",
        "traversal": make_zip([("python/ok.py", "X = 1\n"), ("../evil.py", "X = 1\n")]),
        "nested-traversal": make_zip([("python/ok.py", "X = 1\n"), ("python/../../evil.py", "X = 1\n")]),
        "absolute-path": make_zip([("python/ok.py", "X = 1\n"), ("/tmp/evil.py", "X = 1\n")]),
        "symlink-escape": symlink_zip("python/escape", "../../../../etc/passwd"),
        "symlink-absolute": symlink_zip("python/passwd", "/etc/passwd"),
        "bomb-300MB-zeros": zeros_zip(300 << 20),
    }


def test_publish_layer_version_rejects_bad_zips(raw_client):
    name = unique_name("lyrzip")
    accepted = {}
    for case, z in _bad_layer_zips().items():
        try:
            resp = raw_client.publish_layer_version(LayerName=name, Content={"ZipFile": z})
        except ClientError as e:
            assert error_code(e) in INVALID_PARAM, (case, e.response)
            assert http_status(e) == 400, case
        else:
            accepted[case] = resp["Version"]
    assert not accepted, f"layer zips that a function package would be refused for were published: {accepted}"
    assert not _layer_listable(raw_client, name) or all_layer_versions(raw_client, name) == []


def test_layer_search_paths_in_environment(lambda_client):
    """Lambda's documented layer paths: /opt/bin on PATH and /opt/lib on LD_LIBRARY_PATH."""
    arn = publish_layer(lambda_client, unique_name("lyrenv"), layer_zip("A"))["LayerVersionArn"]
    name = new_probe(lambda_client, layers=[arn])
    env = probe(lambda_client, name, {"action": "env"})
    assert "/opt/bin" in env["PATH"].split(":"), env["PATH"]
    assert "/opt/lib" in env["LD_LIBRARY_PATH"].split(":"), env["LD_LIBRARY_PATH"]
    sys_path = env["sys_path"]
    site = "/opt/python/lib/python3.11/site-packages"
    assert site in sys_path and "/opt/python" in sys_path, sys_path
    assert sys_path.index("/var/task") < sys_path.index(site), "the function's own code must shadow layers"
