"""Bytecode for Python function packages, compiled at deployment in a sandbox.

A python3.11 package with enough source (64 KiB or more without bytecode) gets checked-hash
`.pyc` files beside its modules before the function becomes Active, so its cold starts
import bytecode instead of compiling. The function then sees the same modules, file names and
behaviour; a module that does not compile keeps its source only; bytecode the package ships
is never replaced; small packages are left as they are.
"""

from __future__ import annotations

import json

from alonzo_helpers import create_function, make_zip, unique_name

MODULES = 24

# Each module is about 3 KiB of real code, so the package passes the 64 KiB threshold.
MODULE = '''
"""Generated module {i}."""
TABLE = {{{table}}}


def value():
    return sum(TABLE.values()) + {i}


class Thing{i}:
    def __init__(self):
        self.n = {i}

    def twice(self):
        return self.n * 2
'''

HANDLER = r'''
import importlib, importlib.util, os, sys

def header(path):
    with open(path, "rb") as fh:
        return fh.read(16)

def handler(event, context):
    out = {"modules": {}, "tree": sorted(os.listdir("/var/task"))}
    for name in event["modules"]:
        try:
            mod = importlib.import_module(name)
        except SyntaxError as e:
            out["modules"][name] = {"error": "SyntaxError"}
            continue
        info = {"file": mod.__file__, "cached": mod.__cached__, "has_pyc": os.path.exists(mod.__cached__)}
        if hasattr(mod, "value"):
            info["value"] = mod.value()
            info["co_filename"] = mod.value.__code__.co_filename
        if info["has_pyc"]:
            head = header(mod.__cached__)
            with open(mod.__file__, "rb") as fh:
                source = fh.read()
            info["magic_ok"] = head[:4] == importlib.util.MAGIC_NUMBER
            info["flags"] = int.from_bytes(head[4:8], "little")
            info["hash_ok"] = head[8:16] == importlib.util.source_hash(source)
        out["modules"][name] = info
    shipped = "/var/task/__pycache__/shipped.cpython-311.pyc"
    out["shipped"] = open(shipped, "rb").read().decode() if os.path.exists(shipped) else None
    return out
'''


def big_package(marker: str) -> bytes:
    entries = [("index.py", HANDLER + f"# {marker}\n")]
    for i in range(MODULES):
        table = ", ".join(f"'k{j}': {j * i}" for j in range(200))
        entries.append((f"pkg/mod{i}.py", MODULE.format(i=i, table=table)))
    entries.append(("pkg/__init__.py", ""))
    entries.append(("py2.py", 'print "this is Python 2"\n'))
    entries.append(("shipped.py", "X = 1\n"))
    entries.append(("__pycache__/shipped.cpython-311.pyc", "shipped by the package"))
    return make_zip(entries)


def invoke(client, name: str, event: dict) -> dict:
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    body = json.loads(resp["Payload"].read())
    assert "FunctionError" not in resp, body
    return body


def test_large_python_package_gets_checked_bytecode_before_it_is_active(lambda_client):
    name = unique_name("pyc")
    create_function(lambda_client, name, big_package(name), Handler="index.handler", Timeout=30)
    names = [f"pkg.mod{i}" for i in range(MODULES)] + ["pkg", "py2"]
    out = invoke(lambda_client, name, {"modules": names})
    for i in range(MODULES):
        info = out["modules"][f"pkg.mod{i}"]
        assert info["has_pyc"], info
        assert info["cached"] == f"/var/task/pkg/__pycache__/mod{i}.cpython-311.pyc", info
        assert info["magic_ok"] and info["flags"] == 3 and info["hash_ok"], info
        # The code is the module's own, compiled under its path in the sandbox.
        assert info["value"] == sum(j * i for j in range(200)) + i, info
        assert info["co_filename"] == f"/var/task/pkg/mod{i}.py", info
    assert out["modules"]["pkg"]["has_pyc"], out["modules"]["pkg"]
    # Python 2 code does not compile: it keeps its source only, and importing it fails as
    # it would without bytecode.
    assert out["modules"]["py2"] == {"error": "SyntaxError"}
    # What the package shipped is untouched.
    assert out["shipped"] == "shipped by the package"
    assert "__pycache__" in out["tree"]


def test_small_python_package_is_left_as_it_is(lambda_client):
    name = unique_name("pyc-small")
    entries = [("index.py", HANDLER + f"# {name}\n"), ("helper.py", "def value():\n    return 7\n")]
    create_function(lambda_client, name, make_zip(entries), Handler="index.handler")
    out = invoke(lambda_client, name, {"modules": ["helper"]})
    assert out["modules"]["helper"]["value"] == 7
    assert not out["modules"]["helper"]["has_pyc"]
    assert out["tree"] == ["helper.py", "index.py"], out["tree"]


def test_updated_code_gets_bytecode_too(lambda_client):
    name = unique_name("pyc-upd")
    small = make_zip([("index.py", HANDLER + f"# {name}\n")])
    create_function(lambda_client, name, small, Handler="index.handler", Timeout=30)
    lambda_client.update_function_code(FunctionName=name, ZipFile=big_package(name + "-2"))
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.2})
    out = invoke(lambda_client, name, {"modules": ["pkg.mod3"]})
    assert out["modules"]["pkg.mod3"]["has_pyc"] and out["modules"]["pkg.mod3"]["hash_ok"], out


def test_layers_get_bytecode_for_their_opt_paths(lambda_client):
    name = unique_name("pyc-layer")
    entries = []
    for i in range(MODULES):
        table = ", ".join(f"'k{j}': {j * i}" for j in range(200))
        entries.append((f"python/lpkg/mod{i}.py", MODULE.format(i=i, table=table)))
    entries.append(("python/lpkg/__init__.py", f"# {name}\n"))
    layer = lambda_client.publish_layer_version(
        LayerName=name, Content={"ZipFile": make_zip(entries)}, CompatibleRuntimes=["python3.11"]
    )
    code = make_zip([("index.py", HANDLER + f"# {name}\n")])
    create_function(lambda_client, name, code, Handler="index.handler", Layers=[layer["LayerVersionArn"]], Timeout=30)
    out = invoke(lambda_client, name, {"modules": ["lpkg.mod5"]})
    info = out["modules"]["lpkg.mod5"]
    assert info["cached"] == "/opt/python/lpkg/__pycache__/mod5.cpython-311.pyc", info
    assert info["has_pyc"] and info["hash_ok"] and info["flags"] == 3, info
    assert info["co_filename"] == "/opt/python/lpkg/mod5.py", info
    assert info["value"] == sum(j * 5 for j in range(200)) + 5


def test_a_package_being_compiled_does_not_hold_up_other_functions(lambda_client):
    """Records settle concurrently: a small function created right after a large package is
    Active while the large one is still being compiled (Pending)."""
    big = unique_name("pyc-big")
    entries = [("index.py", HANDLER + f"# {big}\n")]
    for i in range(MODULES * 8):
        table = ", ".join(f"'k{j}': {j * i}" for j in range(200))
        entries.append((f"pkg/mod{i}.py", MODULE.format(i=i, table=table)))
    create_function(lambda_client, big, make_zip(entries), Handler="index.handler", Timeout=30, wait=False)
    small = unique_name("pyc-next")
    create_function(lambda_client, small, make_zip([("index.py", HANDLER + f"# {small}\n")]), Handler="index.handler")
    state = lambda_client.get_function_configuration(FunctionName=big)["State"]
    assert state == "Pending", f"the large package settled first ({state}): settling is serial"
    lambda_client.get_waiter("function_active_v2").wait(FunctionName=big, WaiterConfig={"Delay": 0.2})
    out = invoke(lambda_client, big, {"modules": ["pkg.mod100"]})
    assert out["modules"]["pkg.mod100"]["has_pyc"], out
