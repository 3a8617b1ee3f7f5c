"""Uploading evidence on a real server, on SQLite and PostgreSQL: links and documents stored
and read back, listing and paging, and every bad input answered 4xx naming the field."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from agentwatch.compliance.evidence import MAX_DOCUMENT
from agentwatch.config import Settings
from tests.compliance.helpers import EVIDENCE, PDF, document, link
from tests.detect.helpers import with_detection
from tests.support.server import RunningServer, run_server


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=module_database_url, auth={"enabled": False})
    with run_server(with_detection(base)) as s:
        yield s


def upload(c: Any, body: dict[str, Any]) -> dict[str, Any]:
    r = c.post(EVIDENCE, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_a_link_is_stored_with_who_and_when(srv: RunningServer) -> None:
    with srv.client() as c:
        made = upload(c, link("AML.TA0002", description="Quarterly OSINT review of what we publish"))
        assert made["framework"] == "mitre-atlas" and made["control_id"] == "AML.TA0002"
        assert made["url"] == "https://intranet.example/policy" and made["document"] is None
        assert made["uploaded_by"] == "local:local"  # authentication is off: the local principal
        assert made["uploaded_at"].endswith("Z")
        got = c.get(f"{EVIDENCE}/{made['id']}").json()
        assert got == made


def test_a_document_is_stored_in_the_database_and_read_back(srv: RunningServer) -> None:
    with srv.client() as c:
        made = upload(c, document("AML.TA0003", framework="mitre-atlas"))
        assert made["document"] == {
            "name": "report.pdf",
            "content_type": "application/pdf",
            "size": len(PDF),
            "sha256": hashlib.sha256(PDF).hexdigest(),
        }
        assert "data" not in made["document"]  # lists and answers carry no bytes
        got = c.get(f"{EVIDENCE}/{made['id']}").json()
        assert base64.b64decode(got["document"]["data"]) == PDF
        text = upload(c, document("AML.TA0003", data="résumé, notes\n".encode(), content_type="text/csv"))
        assert text["document"]["size"] == len("résumé, notes\n".encode())


def test_listing_filters_pages_and_gives_the_automatic_evidence(srv: RunningServer) -> None:
    with srv.client() as c:
        ids = [upload(c, link("AML.TA0001", title=f"Item {n}"))["id"] for n in range(3)]
        page = c.get(EVIDENCE, params={"control_id": "AML.TA0001", "limit": 2}).json()
        assert page["total"] == 3 and [e["id"] for e in page["evidence"]] == ids[::-1][:2]
        rest = c.get(EVIDENCE, params={"control_id": "AML.TA0001", "limit": 2, "cursor": page["next_cursor"]}).json()
        assert [e["id"] for e in rest["evidence"]] == ids[:1] and rest["next_cursor"] is None
        assert page["automatic"] is None  # AI attack staging maps to nothing automatic
        # Execution maps to two pack rules (and a tag no loaded pack rule carries)
        auto = c.get(EVIDENCE, params={"control_id": "AML.TA0005"}).json()
        assert auto["evidence"] == [] and auto["total"] == 0
        assert auto["automatic"]["holds"] is True
        assert auto["automatic"]["rules"]["enabled_ids"] == ["AW-TOOL-001", "AW-TOOL-003"]
        nist = c.get(EVIDENCE, params={"framework": "nist-ai-rmf"}).json()
        assert nist["total"] == 0 and "automatic" not in nist


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x", "url": "https://a.example/"}, "control_id"),
        (link("LLM01", title=""), "title"),
        (link("LLM01", title="\u200b"), "title"),
        (link("LLM01", title="x" * 201), "title"),
        (link("LLM01", description="a\x00b"), "description"),
        (link("LLM01", description="d" * 4001), "description"),
        (link("LLM01", url="ftp://files.example/a"), "url"),
        (link("LLM01", url="https://user:pw@files.example/a"), "url"),
        (link("LLM01", url="https:///nohost"), "url"),
        (link("LLM01", url="https://a.example/ b"), "url"),
        (link("LLM01", colour="red"), "colour"),
        ({"control_id": "LLM01", "title": "neither"}, "url or document"),
        ({**link("LLM01"), **document("LLM01")}, "url or document"),
        (document("LLM01", content_type="application/x-msdownload"), "document.content_type"),
        (document("LLM01", content_type="image/png"), "document.data"),  # PDF bytes called PNG
        (document("LLM01", data=b"\xff\xfe not utf-8", content_type="text/plain"), "document.data"),
        (
            {**document("LLM01"), "document": {"name": "a.pdf", "content_type": "application/pdf", "data": "%%%"}},
            "document.data",
        ),
        (
            {
                **document("LLM01"),
                "document": {"name": "../etc/passwd\n", "content_type": "text/plain", "data": "eA=="},
            },
            "document.name",
        ),
        (link("LLM 01"), "control_id"),
    ],
)
def test_bad_input_is_refused_naming_the_field(srv: RunningServer, body: dict[str, Any], field: str) -> None:
    with srv.client() as c:
        r = c.post(EVIDENCE, json=body)
        assert r.status_code == 400, r.text
        assert field in r.json()["error"]["message"]


def test_size_limits(srv: RunningServer) -> None:
    with srv.client() as c:
        big = b"%PDF-" + b"a" * (MAX_DOCUMENT - 5)  # exactly the limit
        assert upload(c, document("AML.TA0008", data=big))["document"]["size"] == MAX_DOCUMENT
        r = c.post(EVIDENCE, json=document("AML.TA0008", data=big + b"b"))
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("document.data")
        r = c.post(
            EVIDENCE, content=b'{"title": "' + b"x" * 600_000 + b'"}', headers={"content-type": "application/json"}
        )
        assert r.status_code == 413


def test_unknown_controls_and_evidence_are_404(srv: RunningServer) -> None:
    with srv.client() as c:
        r = c.post(EVIDENCE, json=link("LLM11"))
        assert r.status_code == 404 and r.json()["error"]["details"]["control_id"] == "LLM11"
        r = c.post(EVIDENCE, json=link("LLM01", framework="mitre-atlas"))  # a control of another framework
        assert r.status_code == 404
        assert c.get(EVIDENCE, params={"control_id": "LLM11"}).status_code == 404
        assert c.get(EVIDENCE, params={"framework": "nope"}).status_code == 404
        assert c.get(f"{EVIDENCE}/00000000-0000-4000-8000-000000000000").status_code == 404
        r = c.get(f"{EVIDENCE}/not-a-uuid")
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("evidence_id")


def test_a_control_holds_at_most_200_uploads(srv: RunningServer) -> None:
    with srv.client() as c:
        for n in range(200):
            assert c.post(EVIDENCE, json=link("AML.TA0015", title=f"Review {n}")).status_code == 201
        r = c.post(EVIDENCE, json=link("AML.TA0015"))
        assert r.status_code == 507 and r.json()["error"]["message"].startswith("control_id:")
        assert c.post(EVIDENCE, json=link("AML.TA0011")).status_code == 201  # another control is not held back
        assert c.get(EVIDENCE, params={"control_id": "AML.TA0015"}).json()["total"] == 200
