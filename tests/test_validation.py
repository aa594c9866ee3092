"""Every rejected request answers with its Lambda error and leaves the store as it was."""

from __future__ import annotations

import functools
import json
import os
import zipfile

import pytest
from botocore.exceptions import ClientError

from alonzo_helpers import (
    ACCOUNT,
    AVAILABLE_RUNTIMES,
    PY_HANDLER,
    assert_lambda_error,
    big_moderate_zip,
    comparable_config,
    create_function,
    create_kwargs,
    error_code,
    fn_path,
    http_status,
    make_zip,
    parse_like_botocore,
    python_zip,
    sign_and_send,
    store_snapshot,
    symlink_zip,
    unique_name,
    wait_updated,
    zeros_zip,
)

IPVE = "InvalidParameterValueException"
# Real Lambda answers violations of the API model's own constraints (patterns, lengths, minimums)
# with ValidationException and its own checks with InvalidParameterValueException; Alonzo does too.
VALIDATION_CODES = {IPVE, "ValidationException"}


@functools.lru_cache(maxsize=None)
def bomb_300mb() -> bytes:
    return zeros_zip(300 << 20)


@functools.lru_cache(maxsize=None)
def high_ratio_entry() -> bytes:
    return zeros_zip(16 << 20)


@functools.lru_cache(maxsize=None)
def unzipped_too_big() -> bytes:
    return big_moderate_zip(262144000 + (10 << 20))


def _entry_ratio(zip_bytes: bytes, name: str) -> float:
    import io

    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        info = zf.getinfo(name)
        return info.file_size / info.compress_size


def bad_zips():
    traversal = make_zip([("app.py", PY_HANDLER), ("../evil.py", "x = 1\n")])
    nested_traversal = make_zip([("app.py", PY_HANDLER), ("lib/../../evil.py", "x = 1\n")])
    absolute = make_zip([("app.py", PY_HANDLER), ("/tmp/evil.py", "x = 1\n")])
    valid = python_zip()
    return {
        "garbage": b"this is definitely not a zip file" * 10,
        "empty": b"",
        "truncated": valid[: len(valid) // 2],
        "traversal": traversal,
        "nested-traversal": nested_traversal,
        "absolute-path": absolute,
        "symlink-absolute": symlink_zip("passwd", "/etc/passwd"),
        "symlink-escape": symlink_zip("lib/escape", "../../../../etc/passwd"),
        "bomb-300MB-zeros": "bomb",
        "entry-ratio-over-1000": "ratio",
        "unzipped-over-250MB": "huge",
    }


def resolve_zip(v):
    if v == "bomb":
        return bomb_300mb()
    if v == "ratio":
        z = high_ratio_entry()
        assert _entry_ratio(z, "zeros.bin") > 1000, "test precondition: entry ratio must exceed 1000:1"
        return z
    if v == "huge":
        return unzipped_too_big()
    return v


def expect_error(call, code: str | set[str], status: int):
    codes = {code} if isinstance(code, str) else set(code)
    with pytest.raises(ClientError) as ei:
        call()
    got = error_code(ei.value)
    assert got in codes, f"expected {' or '.join(sorted(codes))}, got {got}: {ei.value.response.get('Error')}"
    assert http_status(ei.value) == status
    msg = ei.value.response["Error"].get("Message", "")
    assert msg, "error must carry a message"
    return ei.value


@pytest.fixture
def unchanged(raw_client):
    """Snapshots the whole store; the test body's rejected calls must not change it."""
    before = store_snapshot(raw_client)
    yield before
    after = store_snapshot(raw_client)
    assert after == before, "a rejected request changed the store"


# --------------------------------------------------------------------------------------
# CreateFunction
# --------------------------------------------------------------------------------------

CREATE_CASES = {
    # name
    "name-with-space": dict(FunctionName="bad name"),
    "name-with-dot": dict(FunctionName="bad.name"),
    "name-with-bang": dict(FunctionName="bad!"),
    "name-65-chars": dict(FunctionName="a" * 65),
    "name-empty": dict(FunctionName=""),
    "name-unicode": dict(FunctionName="名前"),
    # runtime
    "runtime-python3.9": dict(Runtime="python3.9"),
    "runtime-cobol": dict(Runtime="cobol"),
    "runtime-empty": dict(Runtime=""),
    "runtime-missing": dict(Runtime=None),
    # handler
    "handler-missing": dict(Handler=None),
    "handler-empty": dict(Handler=""),
    "handler-whitespace": dict(Handler="   "),
    "handler-inner-space": dict(Handler="app handler"),
    "handler-129-chars": dict(Handler="h" * 129),
    # sizes
    "memory-127": dict(MemorySize=127),
    "memory-10241": dict(MemorySize=10241),
    "memory-0": dict(MemorySize=0),
    "memory-negative": dict(MemorySize=-128),
    "timeout-0": dict(Timeout=0),
    "timeout-901": dict(Timeout=901),
    "ephemeral-511": dict(EphemeralStorage={"Size": 511}),
    "ephemeral-10241": dict(EphemeralStorage={"Size": 10241}),
    # environment
    "env-over-4KB": dict(Environment={"Variables": {"BIG": "x" * 4097}}),
    "env-over-4KB-many-keys": dict(Environment={"Variables": {f"KEY_{i:03d}": "v" * 40 for i in range(100)}}),
    "env-reserved-AWS_REGION": dict(Environment={"Variables": {"AWS_REGION": "eu-west-1"}}),
    "env-reserved-AWS_LAMBDA_FUNCTION_NAME": dict(Environment={"Variables": {"AWS_LAMBDA_FUNCTION_NAME": "x"}}),
    "env-reserved-_HANDLER": dict(Environment={"Variables": {"_HANDLER": "x"}}),
    "env-reserved-AWS_LAMBDA_RUNTIME_API": dict(Environment={"Variables": {"AWS_LAMBDA_RUNTIME_API": "x"}}),
    "env-key-leading-digit": dict(Environment={"Variables": {"1ABC": "x"}}),
    "env-key-dash": dict(Environment={"Variables": {"A-B": "x"}}),
    "env-key-space": dict(Environment={"Variables": {"A B": "x"}}),
    "env-key-equals": dict(Environment={"Variables": {"FOO=BAR": "x"}}),
    "env-key-empty": dict(Environment={"Variables": {"": "x"}}),
    # role
    "role-not-arn": dict(Role="notarole"),
    "role-short-account": dict(Role="arn:aws:iam::123:role/x"),
    "role-is-user": dict(Role=f"arn:aws:iam::{ACCOUNT}:user/x"),
    "role-empty": dict(Role=""),
    "role-wrong-service": dict(Role=f"arn:aws:s3:::{ACCOUNT}:role/x"),
    # tags
    "tags-51": dict(Tags={f"k{i}": "v" for i in range(51)}),
    "tag-key-129": dict(Tags={"k" * 129: "v"}),
    "tag-value-257": dict(Tags={"k": "v" * 257}),
    "tag-key-empty": dict(Tags={"": "v"}),
    # misc
    "description-257": dict(Description="d" * 257),
    "code-empty": dict(Code={}),
}


@pytest.mark.parametrize("case", list(CREATE_CASES))
def test_create_rejects_invalid_parameters(raw_client, unchanged, case):
    overrides = dict(CREATE_CASES[case])
    name = overrides.get("FunctionName", unique_name("bad"))
    kw = create_kwargs(name)
    for k, v in overrides.items():
        if v is None:
            kw.pop(k, None)
        else:
            kw[k] = v
    expect_error(lambda: raw_client.create_function(**kw), VALIDATION_CODES, 400)
    if name and "/" not in name:
        with pytest.raises(ClientError) as ei:
            raw_client.get_function(FunctionName=name)
        assert error_code(ei.value) in ("ResourceNotFoundException", "ValidationException", IPVE)


def test_unknown_runtime_message_lists_available(raw_client, unchanged):
    err = expect_error(lambda: raw_client.create_function(**create_kwargs(unique_name(), Runtime="python3.9")), IPVE, 400)
    msg = err.response["Error"]["Message"]
    for rt in AVAILABLE_RUNTIMES:
        assert rt in msg, f"message should list {rt}: {msg!r}"


@pytest.mark.parametrize("case", list(bad_zips()))
def test_create_rejects_bad_zip(raw_client, unchanged, case):
    zip_bytes = resolve_zip(bad_zips()[case])
    name = unique_name("badzip")
    expect_error(lambda: raw_client.create_function(**create_kwargs(name, zip_bytes)), IPVE, 400)
    with pytest.raises(ClientError) as ei:
        raw_client.get_function(FunctionName=name)
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_create_duplicate_is_conflict_and_keeps_original(raw_client):
    name = unique_name("dup")
    z = python_zip()
    create_function(raw_client, name, z, Description="original")
    before = comparable_config(raw_client.get_function_configuration(FunctionName=name))
    snap = store_snapshot(raw_client)
    err = expect_error(
        lambda: raw_client.create_function(**create_kwargs(name, python_zip(), Description="impostor")),
        "ResourceConflictException",
        409,
    )
    assert name in err.response["Error"]["Message"]
    assert comparable_config(raw_client.get_function_configuration(FunctionName=name)) == before
    assert store_snapshot(raw_client) == snap


def test_create_package_and_code_source_variants_unsupported(raw_client, unchanged):
    name = unique_name("img")
    for kw in (
        create_kwargs(name, PackageType="Image", Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:latest"}),
        create_kwargs(name, Code={"S3Bucket": "bucket", "S3Key": "key.zip"}),
        create_kwargs(name, Code={"ZipFile": python_zip(), "S3Bucket": "bucket", "S3Key": "key.zip"}),
        create_kwargs(name, Architectures=["sparc"]),
        create_kwargs(name, Architectures=["x86_64", "arm64"]),
    ):
        with pytest.raises(ClientError) as ei:
            raw_client.create_function(**kw)
        assert 400 <= http_status(ei.value) < 500, kw
        assert error_code(ei.value) and not error_code(ei.value).isdigit()


def test_create_request_too_large_is_413(raw_client, unchanged):
    # A stored (incompressible) zip whose base64 makes the JSON body exceed 69905067 bytes.
    payload = make_zip([("app.py", PY_HANDLER), ("blob.bin", os.urandom(52_500_000))], compression=zipfile.ZIP_STORED)
    assert len(payload) * 4 / 3 > 69905067
    name = unique_name("big")
    expect_error(lambda: raw_client.create_function(**create_kwargs(name, payload)), "RequestEntityTooLargeException", 413)


# --------------------------------------------------------------------------------------
# Malformed bodies (signed correctly)
# --------------------------------------------------------------------------------------


def _client_with_body(server, operation: str, body: bytes):
    client = server.client(validate=False)

    def replace(request, **_):
        request.data = body
        request.headers["Content-Length"] = str(len(body))

    client.meta.events.register(f"before-sign.lambda.{operation}", replace)
    return client


@pytest.mark.parametrize(
    "body",
    [b'{"FunctionName": ', b"not json at all", b"[1, 2, 3]", b'{"FunctionName": "x", "MemorySize": "lots"}', b"\xff\xfe\x00garbage"],
    ids=["truncated", "text", "array", "wrong-type", "binary"],
)
def test_malformed_json_create_is_4xx(server, raw_client, unchanged, body):
    client = _client_with_body(server, "CreateFunction", body)
    with pytest.raises(ClientError) as ei:
        client.create_function(**create_kwargs(unique_name("malformed")))
    status = http_status(ei.value)
    assert 400 <= status < 500, status
    code = error_code(ei.value)
    assert code and not code.isdigit(), f"botocore should see a named error code, got {code!r}"
    assert code not in ("InvalidSignatureException", "IncompleteSignatureException"), "body was signed correctly"


def test_malformed_json_update_configuration_is_4xx(server, raw_client):
    name = unique_name()
    create_function(raw_client, name)
    before = comparable_config(raw_client.get_function_configuration(FunctionName=name))
    for body in (b"{", b'{"MemorySize": "lots"}', b'{"Environment": {"Variables": ["A"]}}'):
        client = _client_with_body(server, "UpdateFunctionConfiguration", body)
        with pytest.raises(ClientError) as ei:
            client.update_function_configuration(FunctionName=name, Description="x")
        assert 400 <= http_status(ei.value) < 500, body
        assert error_code(ei.value) and not error_code(ei.value).isdigit()
    # Raw request too, parsed the way botocore would.
    r = sign_and_send(server, "PUT", fn_path(name, "/configuration"), b"{oops")
    assert_lambda_error(r)
    parsed = parse_like_botocore(raw_client, "UpdateFunctionConfiguration", r)
    assert parsed["Error"]["Code"] and not parsed["Error"]["Code"].isdigit()
    assert comparable_config(raw_client.get_function_configuration(FunctionName=name)) == before


def test_raw_invalid_parameter_error_envelope(server):
    body = json.dumps(
        {"FunctionName": unique_name(), "Runtime": "cobol", "Role": f"arn:aws:iam::{ACCOUNT}:role/x", "Handler": "a.b", "Code": {"ZipFile": ""}}
    ).encode()
    r = sign_and_send(server, "POST", "/2015-03-31/functions", body)
    b = assert_lambda_error(r, status=400, code=IPVE)
    assert b["Type"] == "User"


# --------------------------------------------------------------------------------------
# Updates: rejected updates leave the function as it was
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def victim(raw_client):
    name = unique_name("victim")
    create_function(raw_client, name, Environment={"Variables": {"KEEP": "me"}}, MemorySize=256, Timeout=30)
    return name


@pytest.fixture
def victim_unchanged(raw_client, victim):
    wait_updated(raw_client, victim)
    before = comparable_config(raw_client.get_function(FunctionName=victim)["Configuration"])
    yield before
    after = comparable_config(raw_client.get_function(FunctionName=victim)["Configuration"])
    assert after == before, "a rejected update changed the function"


UPDATE_CONFIG_CASES = {
    "memory-64": dict(MemorySize=64),
    "memory-10241": dict(MemorySize=10241),
    "timeout-0": dict(Timeout=0),
    "timeout-901": dict(Timeout=901),
    "handler-whitespace": dict(Handler=" "),
    "handler-empty": dict(Handler=""),
    "runtime-cobol": dict(Runtime="cobol"),
    "runtime-python3.9": dict(Runtime="python3.9"),
    "env-reserved": dict(Environment={"Variables": {"AWS_REGION": "x"}}),
    "env-too-big": dict(Environment={"Variables": {"BIG": "x" * 5000}}),
    "env-bad-key": dict(Environment={"Variables": {"9LIVES": "x"}}),
    "role-bad": dict(Role="arn:aws:iam::nope:role/x"),
    "ephemeral-99999": dict(EphemeralStorage={"Size": 99999}),
    "description-257": dict(Description="d" * 257),
}


@pytest.mark.parametrize("case", list(UPDATE_CONFIG_CASES))
def test_update_configuration_rejects_invalid(raw_client, victim, victim_unchanged, case):
    expect_error(lambda: raw_client.update_function_configuration(FunctionName=victim, **UPDATE_CONFIG_CASES[case]), VALIDATION_CODES, 400)


@pytest.mark.parametrize("case", ["garbage", "empty", "traversal", "absolute-path", "symlink-escape", "bomb-300MB-zeros", "entry-ratio-over-1000"])
def test_update_code_rejects_bad_zip(raw_client, victim, victim_unchanged, case):
    zip_bytes = resolve_zip(bad_zips()[case])
    expect_error(lambda: raw_client.update_function_code(FunctionName=victim, ZipFile=zip_bytes), IPVE, 400)


def test_stale_revision_id_is_412(raw_client, victim, victim_unchanged):
    stale = "00000000-0000-4000-8000-000000000000"
    err = expect_error(lambda: raw_client.update_function_code(FunctionName=victim, ZipFile=python_zip(), RevisionId=stale), "PreconditionFailedException", 412)
    assert err.response["Error"]["Message"]
    expect_error(lambda: raw_client.update_function_configuration(FunctionName=victim, MemorySize=512, RevisionId=stale), "PreconditionFailedException", 412)


def test_revision_id_goes_stale_after_a_change(raw_client):
    name = unique_name()
    create_function(raw_client, name)
    rev1 = raw_client.get_function_configuration(FunctionName=name)["RevisionId"]
    raw_client.update_function_configuration(FunctionName=name, Description="first", RevisionId=rev1)
    cfg = wait_updated(raw_client, name)
    expect_error(lambda: raw_client.update_function_configuration(FunctionName=name, Description="second", RevisionId=rev1), "PreconditionFailedException", 412)
    z = python_zip()
    expect_error(lambda: raw_client.update_function_code(FunctionName=name, ZipFile=z, RevisionId=rev1), "PreconditionFailedException", 412)
    after = raw_client.get_function_configuration(FunctionName=name)
    assert after["Description"] == "first"
    assert after["CodeSha256"] == cfg["CodeSha256"]
    assert after["RevisionId"] == cfg["RevisionId"]


def test_tag_validation(raw_client, victim):
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{victim}"
    before = raw_client.list_tags(Resource=arn)["Tags"]
    for tags in ({f"k{i}": "v" for i in range(51)}, {"k" * 129: "v"}, {"k": "v" * 257}):
        expect_error(lambda: raw_client.tag_resource(Resource=arn, Tags=tags), VALIDATION_CODES, 400)
    assert raw_client.list_tags(Resource=arn)["Tags"] == before
