"""The web console (`/_alonzo/console/`): driven in Debian's headless Chromium with
playwright-core from npm (`tests/console/drive.mjs`), plus plain HTTP checks of its door
(login, sessions, CSRF, refusals) and of escaping.

One private server. The browser test needs `/usr/bin/chromium` and `npm ci` in
`tests/console` (both done by `.ci/run`); without them it fails, it does not skip.
Screenshots go to `target/test-output/console/*.png`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

from alonzo_helpers import console_login as login
from alonzo_helpers import create_function, make_zip, poll_until, running_server, unique_name

REPO = Path(__file__).resolve().parent.parent
DRIVER = REPO / "tests" / "console" / "drive.mjs"
SHOTS = REPO / "target" / "test-output" / "console"

APP = '''
import json
def handler(event, context):
    print("console-line", event.get("marker", "none"))
    print("<b>not bold</b>")
    return {"echo": event.get("marker"), "ok": True}
'''

NASTY = '<script>alert("x")</script>'
NASTY_APP = f'''
def handler(event, context):
    print({NASTY!r})
    return {{"html": {NASTY!r}}}
'''


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("alonzo-console")) as s:
        yield s


@pytest.fixture(scope="module")
def client(srv):
    return srv.client()


def console(srv) -> str:
    return f"{srv.endpoint}/_alonzo/console"


def csrf_of(session: requests.Session, srv) -> str:
    page = session.get(f"{console(srv)}/", timeout=10)
    assert page.status_code == 200, page.text
    return re.search(r'data-csrf="([0-9a-f]{64})"', page.text).group(1)


def test_browser_login_invoke_tail_charts_usage_queues_logout(srv, client):
    assert Path("/usr/bin/chromium").exists(), "Debian's chromium is required: apt-get install -y chromium (see .ci/run)"
    assert (REPO / "tests/console/node_modules/playwright-core").is_dir(), "run `npm ci` in tests/console (see .ci/run)"
    assert shutil.which("node"), "node is required to run playwright-core"

    name = unique_name("console")
    runtime = create_function(client, name, make_zip([("app.py", APP)]), Description="made by test_console")["Runtime"]
    sqs = boto3.session.Session(aws_access_key_id=srv.access_key, aws_secret_access_key=srv.secret_key, region_name=srv.region).client(
        "sqs", endpoint_url=srv.endpoint, config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))
    queue = unique_name("console-q")
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")

    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    cfg = {
        "base": srv.endpoint, "key": srv.access_key, "secret": srv.secret_key,
        "function": name, "runtime": runtime, "marker": unique_name("mark"),
        "queue": queue, "queueDepth": 3, "screenshots": str(SHOTS),
    }
    env = dict(os.environ, CONSOLE_TEST=json.dumps(cfg))
    p = subprocess.run(["node", str(DRIVER)], cwd=DRIVER.parent, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"browser run failed (exit {p.returncode}):\n{p.stdout}\n{p.stderr}"
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["usageRequests"] >= 1
    for shot in ["login", "login-refused", "functions", "function", "usage", "concurrency", "logs", "queues", "functions-mobile"]:
        f = SHOTS / f"{shot}.png"
        assert f.is_file() and f.stat().st_size > 5000, f"missing screenshot {f}"


def test_unauthenticated_requests_are_redirected_or_refused(srv):
    for path in ["/", "/functions/anything", "/concurrency", "/logs", "/usage", "/queues"]:
        r = requests.get(console(srv) + path, allow_redirects=False, timeout=10)
        assert r.status_code == 303, (path, r.status_code)
        assert r.headers["Location"].startswith("/_alonzo/console/login?next="), r.headers["Location"]
    for path in ["/api/concurrency", "/api/queues", "/api/charts", "/api/logs?group=/aws/lambda/x"]:
        r = requests.get(console(srv) + path, timeout=10)
        assert r.status_code == 401, (path, r.status_code)
        assert r.headers["x-amzn-ErrorType"] == "UnauthorizedException"
        assert r.json()["Type"] == "User"
    r = requests.post(console(srv) + "/api/invoke", json={"function": "x", "payload": "{}"}, timeout=10)
    assert r.status_code == 401
    # A forged or stale cookie is no session.
    r = requests.get(console(srv) + "/", cookies={"alonzo_console": "0" * 64}, allow_redirects=False, timeout=10)
    assert r.status_code == 303
    # An oversized login form is refused before it is read.
    r = requests.post(console(srv) + "/login", data={"access_key_id": "x" * 100_000, "secret_access_key": "y", "nonce": "z"}, timeout=10)
    assert r.status_code == 413
    # The login page and the assets are public; the pages carry a strict CSP.
    r = requests.get(console(srv) + "/login", timeout=10)
    assert r.status_code == 200 and "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert requests.get(console(srv) + "/static/console.css", timeout=10).status_code == 200


def test_login_cookie_csrf_and_logout(srv, client):
    # Wrong secret: back to the form, no session.
    bad = login(srv, secret=srv.secret_key + "x")
    assert bad.last_login.status_code == 303 and "error=1" in bad.last_login.headers["Location"]
    assert "alonzo_console" not in bad.cookies
    assert bad.get(f"{console(srv)}/", allow_redirects=False, timeout=10).status_code == 303

    # A login posted without the login page's nonce (from another site) is refused.
    r = requests.post(f"{console(srv)}/login", data={"access_key_id": srv.access_key, "secret_access_key": srv.secret_key, "nonce": "a" * 64},
                      allow_redirects=False, timeout=10)
    assert r.status_code == 403 and "alonzo_console=" not in r.headers.get("Set-Cookie", "")

    s = login(srv)
    assert s.last_login.status_code == 303 and s.last_login.headers["Location"] == "/_alonzo/console/"
    cookie = [c for c in s.last_login.headers["Set-Cookie"].split(", ") if c.startswith("alonzo_console=")][0]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=" in cookie and "Path=/_alonzo/console/" in cookie
    assert re.match(r"alonzo_console=[0-9a-f]{64};", cookie)
    token = csrf_of(s, srv)

    name = unique_name("console-csrf")
    create_function(client, name, make_zip([("app.py", APP)]))
    invoke = f"{console(srv)}/api/invoke"
    body = {"function": name, "payload": json.dumps({"marker": "csrf"})}
    # No token, a wrong token, or another origin: refused, and nothing ran.
    assert s.post(invoke, json=body, timeout=30).status_code == 403
    assert s.post(invoke, json=body, headers={"X-CSRF-Token": "f" * 64}, timeout=30).status_code == 403
    r = s.post(invoke, json=body, headers={"X-CSRF-Token": token, "Origin": "http://evil.example"}, timeout=30)
    assert r.status_code == 403 and r.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    logs = s.get(f"{console(srv)}/api/logs", params={"group": f"/aws/lambda/{name}"}, timeout=10)
    assert logs.status_code == 200 and logs.json()["events"] == []
    # Bad input is a Lambda-shaped error.
    r = s.post(invoke, data=b"not json", headers={"X-CSRF-Token": token}, timeout=30)
    assert r.status_code == 400 and r.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    r = s.post(invoke, json={"function": "no-such-fn", "payload": "{}"}, headers={"X-CSRF-Token": token}, timeout=30)
    assert r.status_code == 404 and r.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    # With the token it runs.
    r = s.post(invoke, json=body, headers={"X-CSRF-Token": token, "Origin": srv.endpoint}, timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert json.loads(out["Payload"]) == {"echo": "csrf", "ok": True}
    assert out["FunctionError"] is None and out["ExecutedVersion"] == "$LATEST"
    assert "console-line csrf" in out["LogTail"]

    # Logout needs the token too; then the session is gone for good.
    assert s.post(f"{console(srv)}/logout", data={}, allow_redirects=False, timeout=10).status_code == 403
    assert s.get(f"{console(srv)}/", allow_redirects=False, timeout=10).status_code == 200
    r = s.post(f"{console(srv)}/logout", data={"csrf": token}, allow_redirects=False, timeout=10)
    assert r.status_code == 303 and "Max-Age=0" in r.headers["Set-Cookie"]
    stale = requests.get(f"{console(srv)}/", cookies={"alonzo_console": s.last_login.cookies["alonzo_console"]}, allow_redirects=False, timeout=10)
    assert stale.status_code == 303


def test_user_data_is_escaped(srv, client):
    name = unique_name("console-xss")
    create_function(client, name, make_zip([("app.py", NASTY_APP)]), Description=NASTY,
                    Environment={"Variables": {"HTML": '"><img src=x onerror=alert(1)>'}})
    client.publish_version(FunctionName=name, Description=NASTY)
    client.create_alias(FunctionName=name, Name="live", FunctionVersion="1", Description=NASTY)
    r = client.invoke(FunctionName=name, Payload=b"{}")
    assert json.loads(r["Payload"].read()) == {"html": NASTY}
    s = login(srv)

    def logged():
        page = s.get(f"{console(srv)}/logs", params={"group": f"/aws/lambda/{name}"}, timeout=10).text
        return page if "&lt;script&gt;alert" in page else None

    pages = [
        s.get(f"{console(srv)}/", timeout=10).text,
        s.get(f"{console(srv)}/functions/{name}", timeout=10).text,
        poll_until(logged, timeout=10, what="the log line"),
    ]
    for html in pages:
        assert "<script>alert" not in html
        assert "<img src=x" not in html
    function_page = pages[1]
    assert function_page.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") >= 3  # description, version, alias
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in function_page
    # The live-tail endpoint hands the raw text over as JSON (the page shows it as text).
    events = s.get(f"{console(srv)}/api/logs", params={"group": f"/aws/lambda/{name}"}, timeout=10).json()["events"]
    assert any(NASTY in e["message"] for e in events)
    # The console only ever serves its own scripts.
    assert pages[0].count("<script") == 1 and 'src="/_alonzo/console/static/console.js"' in pages[0]


def test_console_off_serves_nothing(server_factory):
    srv = server_factory(extra_env={"ALONZO_CONSOLE": "off"}).start()
    r = requests.get(f"{console(srv)}/login", allow_redirects=False, timeout=10)
    assert r.status_code == 403 and r.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert "web console" not in srv.log_text()
