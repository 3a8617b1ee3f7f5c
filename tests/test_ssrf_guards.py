"""SSRF guards on every outbound address a user can set through the API.

API-settable: alert-output URLs (``PUT /api/settings``: ``webhook_url``, ``outputs[].url``) and
scan targets (``POST /api/scan``). Gateway routes, detection outputs, the sensor's server and the
NATS/Redis/database URLs are operator configuration, not API input.

Refused targets are refused before any connection: the tests only assert the 400 (no test sends a
packet outside 127.0.0.0/8). Numeric host forms (decimal, octal, hex, IPv6-mapped, 6to4) are read
by the resolver without DNS; the one name used, ``localhost``, comes from /etc/hosts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentwatch.net.ssrf import guarded_client
from tests.support.server import RunningServer, free_port, open_settings, run_server, serve_asgi


def server_with(tmp_path: Path, *, allow_private: bool) -> Iterator[RunningServer]:
    # the store plays no part in these checks: SQLite only
    settings = open_settings(tmp_path, f"sqlite:///{tmp_path / 'agentwatch.db'}")
    settings = settings.model_copy(
        update={"discovery": settings.discovery.model_copy(update={"notify_allow_private": allow_private})}
    )
    with run_server(settings) as srv:
        yield srv


@pytest.fixture(scope="module")
def public_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The default policy: outputs reach public addresses only."""
    yield from server_with(tmp_path_factory.mktemp("public"), allow_private=False)


@pytest.fixture(scope="module")
def private_allowed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """``discovery.notify_allow_private``: loopback and private receivers too, cloud metadata never."""
    yield from server_with(tmp_path_factory.mktemp("private"), allow_private=True)


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, list[str]]]:
    """A webhook receiver on loopback; ``/redirect/...`` answers 302 to the metadata address."""
    seen: list[str] = []

    async def handle(request: Request) -> Response:
        await request.body()
        seen.append(request.url.path)
        if request.url.path.startswith("/redirect/"):
            return Response(b"", 302, headers={"location": "http://169.254.169.254/latest/meta-data/iam/"})
        return Response(b"ok")

    port = free_port()
    with serve_asgi(Starlette(routes=[Route("/{p:path}", handle, methods=["POST"])]), "127.0.0.1", port):
        yield f"http://127.0.0.1:{port}", seen


def refusal(srv: RunningServer, url: str, where: str) -> str:
    """The 400 message for ``url`` set as ``where`` (``webhook_url`` or ``outputs``)."""
    body = {"webhook_url": url} if where == "webhook_url" else {"outputs": [{"kind": "webhook", "url": url}]}
    with srv.client() as c:
        r = c.put("/api/settings", json=body)
    assert r.status_code == 400, (url, r.status_code, r.text)
    return r.json()["error"]["message"]


ALWAYS_REFUSED = [
    # cloud metadata and credential services, in every spelling of their address
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://2852039166/", "metadata"),  # decimal
    ("http://0xa9fea9fe/", "metadata"),  # hex
    ("http://0251.0376.0251.0376/", "metadata"),  # octal
    ("http://169.254.43518/", "metadata"),  # two-part
    ("http://[::ffff:169.254.169.254]/", "metadata"),  # IPv4-mapped IPv6
    ("http://[::ffff:a9fe:a9fe]/", "metadata"),
    ("http://[2002:a9fe:a9fe::1]/", "metadata"),  # 6to4: the IPv6 form routed to that IPv4 address
    ("http://169.254.170.2/v2/credentials", "metadata"),  # AWS ECS task credentials
    ("http://169.254.170.23/v1/credentials", "metadata"),  # AWS EKS Pod Identity
    ("http://[fd00:ec2::23]/", "metadata"),  # AWS EKS Pod Identity, IPv6
    ("http://[fd00:ec2::254]/", "metadata"),  # AWS IMDS, IPv6
    ("http://169.254.0.23/", "metadata"),  # Tencent Cloud
    ("http://100.100.100.200/", "metadata"),  # Alibaba Cloud
    ("http://192.0.0.192/", "metadata"),  # Oracle Cloud
    ("http://168.63.129.16/machine", "metadata"),  # Azure WireServer: a public address
    # not unicast; credentials and schemes
    ("http://0.0.0.0/", "not a unicast"),
    ("http://0/", "not a unicast"),
    ("http://[::]/", "not a unicast"),
    ("http://224.0.0.1/", "not a unicast"),
    ("http://user:pw@93.184.215.14/", "must not carry credentials"),
    ("http://93.184.215.14@169.254.169.254/", "must not carry credentials"),
    ("gopher://127.0.0.1:6379/_INFO", "scheme must be one of"),
    ("file:///etc/passwd", "scheme must be one of"),
]

PUBLIC_ONLY = [
    ("http://169.254.1.1/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "link-local"),
    ("http://127.0.0.1:9/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://017700000001/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://localhost:9/", "loopback"),  # a name: resolved (from /etc/hosts), then checked
    ("http://10.0.0.1/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://100.64.0.1/", "private"),
    ("http://[fd12::1]/", "private"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://[2002:a00:1::1]/", "private"),  # 6to4 of 10.0.0.1
    ("http://[2002:7f00:1::1]/", "loopback"),  # 6to4 of 127.0.0.1
    ("http://192.0.0.8/", "not a public address"),  # IETF protocol assignments
    ("http://[fec0::1]/", "not a public address"),  # site-local (deprecated, still routed inside some networks)
]


@pytest.mark.parametrize("where", ["webhook_url", "outputs"])
@pytest.mark.parametrize(("url", "rule"), ALWAYS_REFUSED + PUBLIC_ONLY)
def test_the_default_policy_refuses_every_non_public_target_naming_the_field_and_rule(
    public_only: RunningServer, url: str, rule: str, where: str
):
    message = refusal(public_only, url, where)
    field = "webhook_url: " if where == "webhook_url" else "outputs[0].url: "
    assert message.startswith(field) and rule in message


@pytest.mark.parametrize(("url", "rule"), ALWAYS_REFUSED)
def test_metadata_services_stay_refused_when_private_receivers_are_allowed(
    private_allowed: RunningServer, url: str, rule: str
):
    message = refusal(private_allowed, url, "outputs")
    assert message.startswith("outputs[0].url: ") and rule in message


def test_private_receivers_are_accepted_only_when_allowed(private_allowed: RunningServer, receiver):
    base, _seen = receiver
    for url in (f"{base}/hook", "http://localhost:9/hook", "http://10.0.0.1/hook", "http://[fe80::1]/hook"):
        with private_allowed.client() as c:
            r = c.put("/api/settings", json={"outputs": [{"kind": "webhook", "url": url}]})
        assert r.status_code == 200, (url, r.text)


def test_a_redirect_to_the_metadata_address_is_not_followed(private_allowed: RunningServer, receiver):
    base, seen = receiver
    seen.clear()
    with private_allowed.client() as c:
        r = c.put(
            "/api/settings", json={"webhook_url": "", "outputs": [{"kind": "webhook", "url": f"{base}/redirect/x"}]}
        )
        assert r.status_code == 200, r.text
        [outcome] = c.post("/api/settings/test").json()["outcomes"]
    assert outcome["ok"] is False and "302 (redirects are not followed)" in outcome["error"]
    assert seen == ["/redirect/x"]  # one request, to the receiver; the Location was never asked for


async def test_the_address_is_checked_again_when_connecting(receiver):
    """A name that passed (or skipped) the check when saved is resolved and checked again at
    connect time, and the connection goes to the address that was checked: the DNS-rebinding
    defence. ``localhost`` stands for a name whose answer became a loopback address."""
    base, seen = receiver
    seen.clear()
    url = base.replace("127.0.0.1", "localhost") + "/rebound"
    async with guarded_client(allow_private=False, timeout=5) as client:
        with pytest.raises(httpx.ConnectError, match="127.0.0.1 is a loopback address"):
            await client.post(url, content=b"{}")
    assert seen == []
    async with guarded_client(allow_private=True, timeout=5) as client:
        r = await client.post(url, content=b"{}")
    assert r.status_code == 200 and seen == ["/rebound"]


async def test_the_guarded_client_never_follows_a_redirect(receiver):
    base, seen = receiver
    seen.clear()
    async with guarded_client(allow_private=True, timeout=5) as client:
        r = await client.post(f"{base}/redirect/direct", content=b"{}")
    assert r.status_code == 302 and r.headers["location"].startswith("http://169.254.169.254/")
    assert seen == ["/redirect/direct"]


@pytest.mark.parametrize(
    ("params", "rule"),
    [
        ({"network": "169.254.169.254"}, "outside the allowed networks"),
        ({"network": "169.254.169.0/24"}, "outside the allowed networks"),
        ({"hosts": "::ffff:169.254.169.254"}, "outside the allowed networks"),
        ({"hosts": "fe80::1"}, "outside the allowed networks"),
        ({"hosts": "2852039166"}, "not an IP address or CIDR network"),
        ({"hosts": "0251.0376.0251.0376"}, "not an IP address or CIDR network"),
        ({"hosts": "0xa9fea9fe"}, "not an IP address or CIDR network"),
        ({"hosts": "metadata.google.internal"}, "host names are not resolved"),
        ({"network": "0.0.0.0/0"}, "not a unicast network"),
    ],
)
def test_scan_targets_outside_the_allowlist_are_refused_before_any_packet(
    public_only: RunningServer, params: dict[str, str], rule: str
):
    with public_only.client() as c:
        r = c.post("/api/scan", params=params)
        assert r.status_code == 400, r.text
        assert rule in r.json()["error"]["message"]
        assert c.get("/api/scan/status").json()["status"] == "idle"
