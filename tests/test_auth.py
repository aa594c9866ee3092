"""SigV4 at the front door: who gets in, who is refused, and with which error."""

from __future__ import annotations

import datetime as dt
from unittest import mock
from urllib.parse import quote

import botocore.auth
import pytest
import requests
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from alonzo_helpers import (
    TEST_KEY_ID,
    TEST_SECRET,
    assert_lambda_error,
    create_function,
    error_code,
    fn_path,
    http_status,
    python_zip,
    sign_and_send,
    store_snapshot,
    unique_name,
)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


@pytest.fixture(scope="module")
def existing(lambda_client):
    name = unique_name("auth")
    create_function(lambda_client, name)
    return name


def test_valid_signature_is_accepted(server, existing):
    r = sign_and_send(server, "GET", fn_path(existing))
    assert r.status_code == 200, r.text
    assert r.json()["Configuration"]["FunctionName"] == existing


def test_wrong_secret_is_invalid_signature(server, lambda_client):
    before = store_snapshot(lambda_client)
    bad = server.client(secret=TEST_SECRET + "x")
    for call in (
        lambda: bad.list_functions(),
        lambda: bad.create_function(FunctionName=unique_name(), Runtime="python3.11", Role="arn:aws:iam::000000000000:role/r", Handler="app.handler", Code={"ZipFile": python_zip()}),
    ):
        with pytest.raises(ClientError) as ei:
            call()
        assert error_code(ei.value) == "InvalidSignatureException"
        assert http_status(ei.value) == 403
    assert store_snapshot(lambda_client) == before


def test_unknown_access_key_is_unrecognized_client(server):
    bad = server.client(key="AKIAUNKNOWNKEY000000", secret=TEST_SECRET)
    with pytest.raises(ClientError) as ei:
        bad.list_functions()
    assert error_code(ei.value) == "UnrecognizedClientException"
    assert http_status(ei.value) == 403
    r = sign_and_send(server, "GET", "/2015-03-31/functions", key="AKIAUNKNOWNKEY000000")
    assert_lambda_error(r, status=403, code="UnrecognizedClientException")


def test_signature_from_20_minutes_ago_is_rejected(server):
    old = _utcnow() - dt.timedelta(minutes=20)
    client = server.client()
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: old):
        with pytest.raises(ClientError) as ei:
            client.list_functions()
    assert error_code(ei.value) == "InvalidSignatureException"
    assert http_status(ei.value) == 403
    future = _utcnow() + dt.timedelta(minutes=20)
    r = sign_and_send(server, "GET", "/2015-03-31/functions", when=future)
    assert_lambda_error(r, status=403, code="InvalidSignatureException")


def test_signature_within_skew_window_is_accepted(server):
    r = sign_and_send(server, "GET", "/2015-03-31/functions", when=_utcnow() - dt.timedelta(minutes=10))
    assert r.status_code == 200, r.text
    r = sign_and_send(server, "GET", "/2015-03-31/functions", when=_utcnow() + dt.timedelta(minutes=10))
    assert r.status_code == 200, r.text


def test_unsigned_request_is_missing_authentication_token(server):
    r = requests.get(f"{server.endpoint}/2015-03-31/functions", timeout=10)
    assert_lambda_error(r, status=403, code="MissingAuthenticationTokenException")
    unsigned = server.client(signature_version=UNSIGNED)
    with pytest.raises(ClientError) as ei:
        unsigned.list_functions()
    assert error_code(ei.value) == "MissingAuthenticationTokenException"
    assert http_status(ei.value) == 403


def test_unsigned_create_does_not_touch_store(server, lambda_client):
    before = store_snapshot(lambda_client)
    body = b'{"FunctionName":"sneaky","Runtime":"python3.11","Role":"arn:aws:iam::000000000000:role/r","Handler":"a.b","Code":{"ZipFile":""}}'
    r = requests.post(f"{server.endpoint}/2015-03-31/functions", data=body, headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 403
    assert store_snapshot(lambda_client) == before


def test_tampered_body_is_invalid_signature(server, lambda_client, existing):
    before = lambda_client.get_function_configuration(FunctionName=existing)
    body = b'{"Description": "signed"}'

    def tamper(headers, _body):
        return headers, b'{"Description": "evil!"}'

    r = sign_and_send(server, "PUT", fn_path(existing, "/configuration"), body, mutate=tamper)
    assert_lambda_error(r, status=403, code="InvalidSignatureException")
    after = lambda_client.get_function_configuration(FunctionName=existing)
    assert after["Description"] == before.get("Description", "")
    assert after["RevisionId"] == before["RevisionId"]


def test_tampered_path_and_query_are_invalid_signature(server, existing):
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method="GET", url=f"{server.endpoint}/2015-03-31/functions?MaxItems=1")
    botocore.auth.SigV4Auth(Credentials(server.access_key, server.secret_key), "lambda", server.region).add_auth(req)
    headers = dict(req.prepare().headers)
    ok = requests.get(f"{server.endpoint}/2015-03-31/functions?MaxItems=1", headers=headers, timeout=10)
    assert ok.status_code == 200, ok.text
    # The same signature replayed with another query string or another path must fail.
    r = requests.get(f"{server.endpoint}/2015-03-31/functions?MaxItems=2", headers=headers, timeout=10)
    assert_lambda_error(r, status=403, code="InvalidSignatureException")
    r = requests.get(f"{server.endpoint}{fn_path(existing)}", headers=headers, timeout=10)
    assert_lambda_error(r, status=403, code="InvalidSignatureException")


def test_signature_for_another_service_is_rejected(server):
    r = sign_and_send(server, "GET", "/2015-03-31/functions", service="s3")
    assert_lambda_error(r, status=403)


def test_malformed_authorization_header(server):
    for auth in (
        "AWS4-HMAC-SHA256 garbage",
        f"AWS4-HMAC-SHA256 Credential={TEST_KEY_ID}/20260101/us-east-1/lambda/aws4_request",
        "Basic dXNlcjpwYXNz",
        "",
    ):
        r = requests.get(
            f"{server.endpoint}/2015-03-31/functions",
            headers={"Authorization": auth, "X-Amz-Date": _utcnow().strftime("%Y%m%dT%H%M%SZ")},
            timeout=10,
        )
        assert r.status_code in (400, 403), (auth, r.status_code, r.text)
        assert_lambda_error(r)


@pytest.mark.parametrize("form", ["arn", "partial"])
def test_arn_in_path_verifies_double_encoded(server, existing, form):
    ref = server.function_arn(existing) if form == "arn" else f"{server.account}:function:{existing}"
    # On the wire ':' is '%3A'; botocore signs the canonical URI with '%253A'.
    path = fn_path(ref)
    assert "%3A" in path
    r = sign_and_send(server, "GET", path)
    assert r.status_code == 200, r.text
    assert r.json()["Configuration"]["FunctionName"] == existing
    r = sign_and_send(server, "GET", fn_path(ref, "/configuration"))
    assert r.status_code == 200, r.text
    # Tag paths carry a full ARN too.
    r = sign_and_send(server, "GET", f"/2017-03-31/tags/{quote(server.function_arn(existing), safe='')}")
    assert r.status_code == 200, r.text


def test_health_needs_no_auth(server):
    r = requests.get(f"{server.endpoint}/_alonzo/health", timeout=10)
    assert r.status_code == 200


def test_code_location_needs_no_auth_but_api_does(server, lambda_client, existing):
    loc = lambda_client.get_function(FunctionName=existing)["Code"]["Location"]
    assert requests.get(loc, timeout=10).status_code == 200
    # ...while the same function through the API without a signature is refused.
    r = requests.get(f"{server.endpoint}{fn_path(existing)}", timeout=10)
    assert r.status_code == 403
