"""Defects found by attacking the compliance capability: a document declared JSON must be
JSON, a link must not hide invisible or direction-changing characters, the per-control cap
holds under concurrent uploads (SQLite and PostgreSQL), and the MITRE ATLAS dashboard matches
the library's mappings worked out by hand."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from agentwatch.compliance.store import MAX_PER_CONTROL
from agentwatch.config import Settings
from tests.compliance.helpers import BASE, EVIDENCE, document, link, statuses
from tests.detect.helpers import with_detection
from tests.support.server import RunningServer, run_server


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=module_database_url, auth={"enabled": False})
    with run_server(with_detection(base)) as s:
        yield s


def _refused(c: Any, body: dict[str, Any], field: str) -> None:
    r = c.post(EVIDENCE, json=body)
    assert r.status_code in (400, 422), r.text
    assert field in r.text, r.text


def test_atlas_statuses_worked_out_from_the_library_by_hand(srv: RunningServer) -> None:
    # pack and built-in rules on, no approved models, no active honeytoken, no indicator loaded
    with srv.client() as c:
        got = statuses(c, "mitre-atlas")
        doc = c.get(f"{BASE}/dashboard/mitre-atlas").json()
    covered = {"AML.TA0004", "AML.TA0005", "AML.TA0006", "AML.TA0012", "AML.TA0007", "AML.TA0009"}
    covered |= {"AML.TA0010", "AML.TA0011"}
    # no automatic map: TA0002, TA0003, TA0008, TA0015, TA0001; TA0000 needs an approved-model
    # list, TA0013 a live honeytoken, TA0014 a loaded indicator
    gaps = {"AML.TA0002", "AML.TA0003", "AML.TA0008", "AML.TA0015", "AML.TA0001", "AML.TA0000"}
    gaps |= {"AML.TA0013", "AML.TA0014"}
    assert got == {**dict.fromkeys(covered, "covered"), **dict.fromkeys(gaps, "gap")}
    assert doc["totals"] == {"controls": 16, "covered": 8, "evidence": 0, "gap": 8, "percent_addressed": 50.0}


def test_a_document_declared_json_must_parse_as_json(srv: RunningServer) -> None:
    with srv.client() as c:
        _refused(c, document("LLM09", data=b"<html><script>x</script>", content_type="application/json"), "document")
        _refused(c, document("LLM09", data=b'{"a": 1', content_type="application/json"), "document.data")
        r = c.post(EVIDENCE, json=document("LLM09", data=b'{"a": [1, 2]}', content_type="application/json"))
        assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/\u202ecod.exe",  # right-to-left override: shows another name
        "https://exa\u200bmple.com/",  # zero-width space
        "https://example.com/\u0085x",  # NEL, a C1 control
        "https://example.com/\u00a0x",  # no-break space
        "https://example.com/\u2028x",  # line separator
    ],
)
def test_a_link_with_invisible_or_bidi_characters_is_refused(srv: RunningServer, url: str) -> None:
    with srv.client() as c:
        _refused(c, link("LLM09", url=url), "url")


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "file:///etc/passwd", "ftp://example.com/a", "https://u:p@example.com/", "https://@x.io/"],
)
def test_odd_schemes_and_credentials_are_refused(srv: RunningServer, url: str) -> None:
    with srv.client() as c:
        _refused(c, link("LLM09", url=url), "url")


def test_the_cap_holds_under_concurrent_uploads(srv: RunningServer) -> None:
    with srv.client() as c:
        held = c.get(EVIDENCE, params={"control_id": "AML.TA0001"}).json()["total"]
        for n in range(MAX_PER_CONTROL - 5 - held):
            assert c.post(EVIDENCE, json=link("AML.TA0001", title=f"Review {n}")).status_code == 201

        def upload(n: int) -> int:
            with srv.client() as own:
                return own.post(EVIDENCE, json=link("AML.TA0001", title=f"Race {n}")).status_code

        with ThreadPoolExecutor(max_workers=12) as pool:
            codes = sorted(pool.map(upload, range(12)))
        assert codes == [201] * 5 + [507] * 7
        assert c.get(EVIDENCE, params={"control_id": "AML.TA0001"}).json()["total"] == MAX_PER_CONTROL
