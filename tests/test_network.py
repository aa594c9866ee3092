"""Sandbox networking (docs/network.md): outbound access, DNS, `none` networks, VPC egress rules,
isolation from the host and from other sandboxes, and function-to-platform calls with boto3.

The "internet" is a test host this module creates: a network namespace joined to the host by a
veth pair, 198.51.100.0/24 (TEST-NET-2), with HTTP servers on ports 80 and 8080 and a tiny DNS
responder that knows `internet.test`. Servers under test use it as their only DNS resolver, so no
packet of this module, DNS included, goes anywhere but loopback and that namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
import zipfile
import io
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from alonzo_helpers import (
    AlonzoServer,
    create_function,
    expect_error,
    invoke_ok,
    make_zip,
    poll_until,
    unique_name,
    wait_updated,
)

INTERNET = "198.51.100.2"
HOST_SIDE = "198.51.100.1"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
    reason="sandbox networking needs root, iproute2's `ip` and nftables' `nft`",
)

# The test host: HTTP on 80 and 8080 answering "internet <port> <client address>", and DNS on
# 53/udp answering A queries for internet.test (NXDOMAIN for other names, no AAAA records).
INTERNET_HOST = r'''
import http.server, socket, socketserver, struct, sys, threading

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"internet {self.server.server_address[1]} {self.client_address[0]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

def dns():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 53))
    while True:
        query, peer = sock.recvfrom(512)
        try:
            pos, labels = 12, []
            while query[pos]:
                labels.append(query[pos + 1:pos + 1 + query[pos]].decode().lower())
                pos += 1 + query[pos]
            qtype = struct.unpack("!H", query[pos + 1:pos + 3])[0]
            question = query[12:pos + 5]
        except Exception:
            continue
        name = ".".join(labels)
        print("dns", name, qtype, peer[0], flush=True)
        known = name == "internet.test"
        answer = b""
        if known and qtype == 1:
            answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(sys.argv[1])
        flags = 0x8180 if known else 0x8183
        header = query[:2] + struct.pack("!HHHHH", flags, 1, 1 if answer else 0, 0, 0)
        sock.sendto(header + question + answer, peer)

for port in (80, 8080):
    server = Server(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
threading.Thread(target=dns, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
'''

# The function every test runs: it reports its own address and gateway and runs the probes it
# is given (HTTP GETs and TCP connects); with LISTEN=1 it serves TCP on port 7000 while warm.
PROBE = r'''
import json, os, socket, threading, urllib.request

def _serve():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 7000))
    s.listen(16)
    while True:
        c, _ = s.accept()
        c.sendall(b"sandbox")
        c.close()

if os.environ.get("LISTEN") == "1":
    threading.Thread(target=_serve, daemon=True).start()

def address():
    # connect() on a UDP socket only picks the route and source address; nothing is sent.
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("198.51.100.2", 9))
        return s.getsockname()[0]
    except OSError as e:
        return None

def gateway():
    with open("/proc/net/route") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == "00000000":
                return socket.inet_ntoa(bytes.fromhex(fields[2])[::-1])
    return None

def probe(p):
    host = p.get("host")
    if host == "$gateway":
        host = gateway()
    try:
        if p["kind"] == "http":
            url = p["url"].replace("$gateway", str(gateway()))
            with urllib.request.urlopen(url, timeout=p.get("timeout", 3)) as r:
                return {"ok": True, "body": r.read().decode()}
        s = socket.create_connection((host, p["port"]), timeout=p.get("timeout", 3))
        s.settimeout(2)
        try:
            data = s.recv(100)
        except OSError:
            data = b""
        s.close()
        return {"ok": True, "body": data.decode(errors="replace")}
    except Exception as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}

def eth0_disable_ipv6():
    # A sandbox without a network (mode none) has no eth0.
    try:
        return open("/proc/sys/net/ipv6/conf/eth0/disable_ipv6").read().strip()
    except FileNotFoundError:
        return None

def handler(event, context):
    return {
        "address": address(),
        "gateway": gateway(),
        "env": {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")},
        "resolv": open("/etc/resolv.conf").read(),
        "if_inet6": [line.split()[-1] for line in open("/proc/net/if_inet6")],
        "eth0_disable_ipv6": eth0_disable_ipv6(),
        "results": [probe(p) for p in event.get("probes", [])],
    }
'''

# A function that uses boto3 (vendored into its package) through AWS_ENDPOINT_URL.
PLATFORM_CALLER = r'''
import json, boto3

def handler(event, context):
    sqs = boto3.client("sqs")
    sent = sqs.send_message(QueueUrl=event["queue_url"], MessageBody=event["message"])
    lam = boto3.client("lambda")
    out = lam.invoke(FunctionName=event["target"], Payload=json.dumps({"from": "inside"}).encode())
    return {"message_id": sent["MessageId"], "invoked": json.loads(out["Payload"].read())}
'''

NETWORKS = {
    "networks": {
        "web": {
            "subnet_ids": ["subnet-0web1", "subnet-0web2"],
            "security_group_ids": ["sg-0web"],
            "egress": [{"cidr": "198.51.100.0/24", "protocol": "tcp", "ports": [80]}],
        },
        "isolated": {"mode": "none", "subnet_ids": ["subnet-0isolated"]},
    }
}


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def internet(tmp_path_factory):
    """The test host in its own network namespace; removed (with its veth) on every exit."""
    tag = uuid.uuid4().hex[:6]
    netns, host_if, ns_if = f"alonzo-net-{tag}", f"alzn{tag}", f"alzp{tag}"
    script = tmp_path_factory.mktemp("internet") / "internet.py"
    script.write_text(INTERNET_HOST)
    proc = None
    log = script.with_suffix(".log")
    try:
        sh("ip", "netns", "add", netns)
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", ns_if, "netns", netns)
        sh("ip", "addr", "add", f"{HOST_SIDE}/24", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "netns", "exec", netns, "ip", "addr", "add", f"{INTERNET}/24", "dev", ns_if)
        sh("ip", "netns", "exec", netns, "ip", "link", "set", ns_if, "up")
        sh("ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up")
        with open(log, "w") as fh:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", netns, sys.executable, "-u", str(script), INTERNET],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        poll_until(lambda: "ready" in log.read_text() or proc.poll() is not None, 10, what="the test host")
        assert proc.poll() is None, log.read_text()
        yield {"netns": netns, "log": log}
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)
        sh("ip", "link", "del", host_if, check=False)
        sh("ip", "netns", "del", netns, check=False)


def make_server(root: Path, **env: str) -> AlonzoServer:
    return AlonzoServer(root, owner="test_network", extra_env={"ALONZO_DNS": INTERNET, **env})


@pytest.fixture(scope="module")
def vpc_server(tmp_path_factory, internet):
    """A server with the networks file and function-to-platform calls (with credentials)."""
    root = tmp_path_factory.mktemp("alonzo-net-vpc")
    networks = root / "networks.json"
    networks.write_text(json.dumps(NETWORKS))
    srv = make_server(root, ALONZO_NETWORKS=str(networks), ALONZO_FUNCTION_PLATFORM_ACCESS="credentials")
    srv.start()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory, internet):
    """A server with the defaults: outbound networking, no function-to-platform calls."""
    srv = make_server(tmp_path_factory.mktemp("alonzo-net-plain"))
    srv.start()
    yield srv
    srv.close()


def probe_zip() -> bytes:
    return make_zip([("app.py", PROBE + f"\n# {uuid.uuid4().hex}\n")])


def run_probes(client, name: str, *probes: dict) -> dict:
    _, body = invoke_ok(client, name, {"probes": list(probes)})
    return body


def http(url: str, timeout: float = 3) -> dict:
    return {"kind": "http", "url": url, "timeout": timeout}


def tcp(host: str, port: int, timeout: float = 1.5) -> dict:
    return {"kind": "tcp", "host": host, "port": port, "timeout": timeout}


def test_outbound_by_ip_and_by_dns_name(plain_server, internet):
    client = plain_server.client()
    name = create_function(client, zip_bytes=probe_zip(), Timeout=30)["FunctionName"]
    out = run_probes(client, name, http(f"http://{INTERNET}/"), http("http://internet.test:8080/"))
    by_ip, by_name = out["results"]
    assert by_ip["ok"], out
    assert by_name["ok"], out
    # The test host saw the host's side of its link (NAT), not the sandbox's private address.
    assert by_ip["body"] == f"internet 80 {HOST_SIDE}"
    assert by_name["body"] == f"internet 8080 {HOST_SIDE}"
    assert out["resolv"].splitlines()[0] == f"nameserver {INTERNET}"
    assert out["address"].startswith("10.2"), out
    assert out["env"]["AWS_ENDPOINT_URL"] is None  # function-to-platform calls are off
    assert "dns internet.test 1" in internet["log"].read_text()


def test_sandbox_interfaces_have_no_ipv6(plain_server, internet):
    """Sandboxes have no IPv6 route, so neither end of a veth pair has an IPv6 address
    (docs/network.md): the function's `eth0` has IPv6 off (its loopback keeps ::1), and the
    host ends of the server's pairs generate no address."""
    client = plain_server.client()
    name = create_function(client, zip_bytes=probe_zip(), Timeout=30)["FunctionName"]
    out = run_probes(client, name, http(f"http://{INTERNET}/"))
    assert out["results"][0]["ok"], out
    assert out["if_inet6"] == ["lo"], out
    assert out["eth0_disable_ipv6"] == "1", out
    # The environment stays warm, so its host end is still there.
    links = sh("ip", "-o", "link", "show").stdout
    host_ends = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()
                 if line.split(":")[1].strip().startswith("az")]
    assert host_ends, links
    for ifname in host_ends:
        assert sh("ip", "-6", "-o", "addr", "show", "dev", ifname).stdout.strip() == "", ifname
        # IN6_ADDR_GEN_MODE_NONE: no link-local address when it comes up.
        mode = Path(f"/proc/sys/net/ipv6/conf/{ifname}/addr_gen_mode")
        assert mode.read_text().strip() == "1", ifname


def test_none_network_and_operator_default_none(vpc_server, tmp_path_factory, internet):
    client = vpc_server.client()
    name = create_function(
        client, zip_bytes=probe_zip(), Timeout=30,
        VpcConfig={"SubnetIds": ["subnet-0isolated"], "SecurityGroupIds": []},
    )["FunctionName"]
    out = run_probes(client, name, tcp(INTERNET, 80))
    # The Runtime API works (the invocation ran) but there is no route anywhere.
    assert out["address"] is None and out["gateway"] is None, out
    assert not out["results"][0]["ok"]
    assert out["env"]["AWS_ENDPOINT_URL"] is None

    srv = make_server(tmp_path_factory.mktemp("alonzo-net-none"), ALONZO_NETWORK_MODE="none")
    try:
        srv.start()
        client = srv.client()
        name = create_function(client, zip_bytes=probe_zip(), Timeout=30)["FunctionName"]
        out = run_probes(client, name, tcp(INTERNET, 80))
        assert out["gateway"] is None and not out["results"][0]["ok"], out
    finally:
        srv.close()


def test_vpc_egress_rules_allow_one_port_and_block_another(vpc_server, internet):
    client = vpc_server.client()
    name = create_function(
        client, zip_bytes=probe_zip(), Timeout=30,
        VpcConfig={"SubnetIds": ["subnet-0web2", "subnet-0web1"], "SecurityGroupIds": ["sg-0web"]},
    )["FunctionName"]
    cfg = client.get_function_configuration(FunctionName=name)
    assert sorted(cfg["VpcConfig"]["SubnetIds"]) == ["subnet-0web1", "subnet-0web2"]
    out = run_probes(
        client, name,
        http(f"http://{INTERNET}/"),
        http(f"http://{INTERNET}:8080/", timeout=1.5),
        http("http://internet.test/"),
    )
    allowed, blocked, by_name = out["results"]
    assert allowed["ok"] and allowed["body"].startswith("internet 80"), out
    assert not blocked["ok"], out
    assert by_name["ok"], out  # the DNS resolvers are reachable from every network


def test_unknown_subnets_and_security_groups_are_rejected(vpc_server):
    client = vpc_server.client()
    name = unique_name("vpc")
    for vpc, needle in [
        ({"SubnetIds": ["subnet-0nope"], "SecurityGroupIds": []}, "subnet-0nope"),
        ({"SubnetIds": ["subnet-0web1"], "SecurityGroupIds": ["sg-0nope"]}, "sg-0nope"),
        ({"SubnetIds": ["subnet-0web1", "subnet-0isolated"], "SecurityGroupIds": []}, "different networks"),
    ]:
        err = expect_error(
            "InvalidParameterValueException",
            client.create_function,
            FunctionName=name, Runtime="python3.11", Role="arn:aws:iam::123456789012:role/lambda",
            Handler="app.handler", Code={"ZipFile": probe_zip()}, VpcConfig=vpc,
        )
        assert needle in str(err)
    expect_error("ResourceNotFoundException", client.get_function, FunctionName=name)
    create_function(client, name, zip_bytes=probe_zip())
    before = client.get_function_configuration(FunctionName=name)
    expect_error(
        "InvalidParameterValueException",
        client.update_function_configuration,
        FunctionName=name, VpcConfig={"SubnetIds": ["subnet-0nope"], "SecurityGroupIds": []},
    )
    after = client.get_function_configuration(FunctionName=name)
    assert after["RevisionId"] == before["RevisionId"]
    client.update_function_configuration(
        FunctionName=name, VpcConfig={"SubnetIds": ["subnet-0isolated"], "SecurityGroupIds": []}
    )
    wait_updated(client, name)


def test_no_connection_to_the_host_or_another_sandbox(plain_server, internet):
    client = plain_server.client()
    listener = create_function(
        client, zip_bytes=probe_zip(), Timeout=30, Environment={"Variables": {"LISTEN": "1"}}
    )["FunctionName"]
    other = create_function(client, zip_bytes=probe_zip(), Timeout=30)["FunctionName"]
    # A host service on every address, including the host side of the test host's link.
    host_service = socket.socket()
    host_service.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    host_service.bind(("0.0.0.0", 0))
    host_service.listen(8)
    host_port = host_service.getsockname()[1]
    accepted: list = []

    def accept():
        while True:
            try:
                conn, peer = host_service.accept()
            except OSError:
                return
            accepted.append(peer)
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    try:
        # The listening sandbox answers itself on its own address (the listener is live)...
        first = run_probes(client, listener)
        target = first["address"]
        self_check = run_probes(client, listener, tcp(target, 7000))
        assert self_check["results"][0] == {"ok": True, "body": "sandbox"}, self_check
        # ...but nothing else reaches it, and the other sandbox reaches no host address.
        out = run_probes(
            client, other,
            tcp(target, 7000),
            tcp(target, 9001),
            tcp("$gateway", plain_server.port),
            tcp("$gateway", host_port),
            tcp(HOST_SIDE, host_port),
            tcp("127.0.0.1", plain_server.port),
            tcp(INTERNET, 80),
        )
        results = out["results"]
        assert all(not r["ok"] for r in results[:6]), out
        assert results[6]["ok"], out  # while the world is reachable
        assert out["address"] != target
        assert accepted == []
    finally:
        host_service.close()


def vendored_boto3_zip(code: str) -> bytes:
    """boto3 and its pure-Python dependencies from the test's own environment, with only the
    Lambda, SQS and STS models of botocore (the sandbox's Python has no boto3)."""
    import botocore
    import dateutil
    import jmespath
    import s3transfer
    import six
    import urllib3

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("app.py", code)
        zf.write(six.__file__, "six.py")
        for module in (boto3, botocore, dateutil, jmespath, s3transfer, urllib3):
            root = Path(module.__file__).parent
            for path in root.rglob("*"):
                rel = path.relative_to(root.parent)
                if path.is_dir() or "__pycache__" in rel.parts:
                    continue
                parts = rel.parts
                if parts[:2] == ("botocore", "data") and len(parts) > 3 and parts[2] not in ("lambda", "sqs", "sts"):
                    continue
                if parts[:2] == ("boto3", "data"):
                    continue
                zf.write(path, str(rel))
    return buf.getvalue()


def test_function_calls_the_platform_with_boto3(vpc_server):
    client = vpc_server.client()
    sqs = boto3.client(
        "sqs", endpoint_url=vpc_server.endpoint, region_name=vpc_server.region,
        aws_access_key_id=vpc_server.access_key, aws_secret_access_key=vpc_server.secret_key,
        config=Config(retries={"total_max_attempts": 1}),
    )
    queue_url = sqs.create_queue(QueueName=unique_name("netq"))["QueueUrl"]
    target = create_function(client)["FunctionName"]  # echoes its event
    caller = create_function(
        client, zip_bytes=vendored_boto3_zip(PLATFORM_CALLER), Timeout=60, MemorySize=512
    )["FunctionName"]
    probe = create_function(client, zip_bytes=probe_zip(), Timeout=30)["FunctionName"]
    env = run_probes(client, probe)
    assert env["env"]["AWS_ENDPOINT_URL"] == f"http://{env['gateway']}:{vpc_server.port}", env
    assert env["env"]["AWS_ACCESS_KEY_ID"] == vpc_server.access_key

    _, out = invoke_ok(client, caller, {"queue_url": queue_url, "message": "hello from a function", "target": target})
    assert out["invoked"] == {"from": "inside"}, out
    got = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5)["Messages"]
    assert [m["Body"] for m in got] == ["hello from a function"]
    assert got[0]["MessageId"] == out["message_id"]
    # Only the API port is open on the gateway.
    blocked = run_probes(client, probe, tcp("$gateway", vpc_server.metrics_port), tcp("$gateway", 22))
    assert all(not r["ok"] for r in blocked["results"]), blocked


def test_concurrent_sandboxes_get_distinct_addresses(plain_server, internet):
    client = plain_server.client()
    names = [create_function(client, zip_bytes=probe_zip(), Timeout=30)["FunctionName"] for _ in range(4)]
    results: dict = {}

    def go(name):
        results[name] = run_probes(client, name, http(f"http://{INTERNET}/"))

    threads = [threading.Thread(target=go, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert all(r["results"][0]["ok"] for r in results.values()), results
    assert len({r["address"] for r in results.values()}) == 4


def test_invalid_network_settings_exit_2_before_binding(tmp_path):
    bad = tmp_path / "networks.json"
    bad.write_text(json.dumps({"networks": {"a": {"subnet_ids": ["s"], "egress": [{"cidr": "10.0.0.1/8"}]}}}))
    for env in (
        {"ALONZO_NETWORKS": str(bad)},
        {"ALONZO_NETWORKS": str(tmp_path / "missing.json")},
        {"ALONZO_NETWORK_MODE": "open"},
        {"ALONZO_DNS": "not-an-ip"},
        {"ALONZO_FUNCTION_PLATFORM_ACCESS": "sometimes"},
    ):
        srv = AlonzoServer(tmp_path / uuid.uuid4().hex[:8], owner="test_network", extra_env=env)
        proc = subprocess.run(srv.command(), env=srv.server_env, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2, (env, proc.stderr)
        assert "invalid configuration" in proc.stderr, proc.stderr
