"""The ledger's head carries an HMAC under a key derived from the server's token-signing secret
(``auth.jwt_secret``, else ``data_dir/jwt.key``), which the database does not hold: a ledger
rewritten in the store with its whole chain recomputed, or whose MAC was removed, no longer
verifies, and says why; a ledger written before heads were keyed is sealed only by an operator's
``agentwatch investigations seal-legacy``. Real servers on
SQLite and PostgreSQL, the scripted fake LLM on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from alembic import command
from pydantic import SecretStr
from sqlalchemy import text

from agentwatch.config import LlmSettings, Settings
from agentwatch.soc.audit import AuditLog
from agentwatch.soc.investigations import ledger, seal
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import alembic_config, migrate
from tests.cli.test_cli_hunt import run as run_cli
from tests.investigations.support import BOUNDS, MODEL, calls, final, new_case, script, seed, start, wait_done
from tests.support.fake_llm import FakeLlm
from tests.support.server import RunningServer, open_settings, run_server

GENESIS = "0" * 64
JWT_SECRET = "a-token-signing-secret-of-forty-bytes-xx"


def _body(iid: str, seq: int, kind: str, payload: dict[str, Any]) -> str:
    doc = {"investigation_id": iid, "seq": seq, "kind": kind, "ts": 1_700_000_000.0 + seq, "payload": payload}
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def _link(prev: str, body: str) -> str:
    return hashlib.sha256((prev + body).encode()).hexdigest()


def rewrite(engine: Any, iid: str) -> None:
    """What someone holding the database but not the server's secret can do: change an entry
    and recompute the chain after it and the recorded head, so every hash agrees again."""
    with engine.begin() as conn:
        rows = conn.execute(
            text("SELECT seq, body FROM investigation_entries WHERE investigation_id = :i ORDER BY seq"), {"i": iid}
        ).all()
        prev = GENESIS
        for seq, body in rows:
            if seq == 2:
                doc = orjson.loads(body)
                doc["payload"]["rewritten"] = True
                body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()
            h = _link(prev, body)
            conn.execute(
                text(
                    "UPDATE investigation_entries SET body = :b, prev_hash = :p, hash = :h"
                    " WHERE investigation_id = :i AND seq = :s"
                ),
                {"b": body, "p": prev, "h": h, "i": iid, "s": seq},
            )
            prev = h
        conn.execute(text("UPDATE investigations SET head_hash = :h WHERE id = :i"), {"h": prev, "i": iid})


def run_standard(srv: RunningServer, c: Any, fake: FakeLlm) -> tuple[dict[str, Any], str, str]:
    """A short finished investigation: one tool call, then the report (seven entries)."""
    seeded = seed(srv.aw.engine)
    case_id = new_case(c, seeded)
    script(fake, [calls(("get_alert", {"alert_id": seeded["alert_id"]})), final({"summary": "looked"})])
    doc = wait_done(c, start(c, case_id))
    assert doc["status"] == "done" and doc["entries"] >= 3, doc
    return seeded, case_id, doc["id"]


def _ledger(c: Any, iid: str) -> dict[str, Any]:
    r = c.get(f"/api/v1/investigations/{iid}")
    assert r.status_code == 200, r.text
    return r.json()["ledger"]


def test_a_new_ledger_verifies_under_the_servers_key(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    _seeded, case_id, iid = run_standard(srv, c, fake)
    doc = _ledger(c, iid)
    assert doc["verified"] is True and doc["mac"] == "valid" and doc["reason"] is None
    replayed = c.post(f"/api/v1/cases/{case_id}/investigations:replay", json={"investigation_id": iid}).json()
    assert replayed["chain"]["mac"] == "valid" and replayed["identical"] is True


def test_a_ledger_rewritten_with_its_chain_recomputed_fails_and_says_why(
    srv: RunningServer, c: Any, fake: FakeLlm
) -> None:
    _seeded, case_id, iid = run_standard(srv, c, fake)
    rewrite(srv.aw.engine, iid)
    doc = _ledger(c, iid)
    assert doc["verified"] is False and doc["mac"] == "invalid"
    assert "MAC" in doc["reason"] and "server key" in doc["reason"]
    replayed = c.post(f"/api/v1/cases/{case_id}/investigations:replay", json={"investigation_id": iid}).json()
    assert replayed["chain"]["verified"] is False and replayed["identical"] is False
    # a MAC made with any other key is no better
    with srv.aw.engine.begin() as conn:
        head = conn.execute(text("SELECT entries, head_hash FROM investigations WHERE id = :i"), {"i": iid}).one()
        forged = hmac.new(b"guessed", f"{iid}\n{head[0]}\n{head[1]}".encode(), hashlib.sha256).hexdigest()
        conn.execute(text("UPDATE investigations SET head_mac = :m WHERE id = :i"), {"m": forged, "i": iid})
    assert _ledger(c, iid)["verified"] is False


def test_a_ledger_whose_mac_was_removed_fails_and_says_why(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    _seeded, _case_id, iid = run_standard(srv, c, fake)
    with srv.aw.engine.begin() as conn:  # someone with the database takes the seal away
        conn.execute(text("UPDATE investigations SET head_mac = NULL WHERE id = :i"), {"i": iid})
    doc = _ledger(c, iid)
    assert doc["verified"] is False and doc["mac"] == "unkeyed" and doc["first_bad_seq"] is None
    assert "no MAC" in doc["reason"]
    rewrite(srv.aw.engine, iid)  # and then rewrites the chain: still no ledger that verifies
    doc = _ledger(c, iid)
    assert doc["verified"] is False and doc["mac"] == "unkeyed"


def test_the_key_is_derived_from_the_token_signing_secret(
    module_database_url: str, tmp_path: Path, fake: FakeLlm
) -> None:
    def settings(data_dir: Path, secret: str | None) -> Settings:
        base = open_settings(data_dir, module_database_url)
        llm = LlmSettings(enabled=True, base_url=fake.url, model=MODEL, allow_private=True, timeout_s=5)
        auth = base.auth.model_copy(update={"jwt_secret": SecretStr(secret) if secret else None})
        inv = base.investigations.model_copy(update=BOUNDS)
        return base.model_copy(update={"llm": llm, "auth": auth, "investigations": inv})

    first, second = tmp_path / "first", tmp_path / "second"
    with run_server(settings(first, JWT_SECRET)) as s, s.client() as c:
        _seeded, _case_id, iid = run_standard(s, c, fake)
        assert _ledger(c, iid)["mac"] == "valid"
    with run_server(settings(second, JWT_SECRET)) as s, s.client() as c:  # another node, the same secret
        assert _ledger(c, iid)["mac"] == "valid"
    with run_server(settings(second, None)) as s, s.client() as c:  # the secret generated into its data dir
        doc = _ledger(c, iid)
        assert doc["verified"] is False and doc["mac"] == "invalid" and "key changed" in doc["reason"]
    assert sorted(p.name for p in second.iterdir() if p.suffix == ".key") == ["jwt.key"]  # no secret of its own


def _legacy_ledger(engine: Any, bodies: list[str]) -> str:
    """A finished investigation stored as the schema before 0841 kept it: no MAC column yet."""
    iid, case_id, prev = str(uuid.uuid4()), str(uuid.uuid4()), GENESIS
    with engine.begin() as conn:
        for seq, body in enumerate(bodies, 1):
            kind = orjson.loads(body)["kind"]
            h = _link(prev, body.replace("IID", iid))
            conn.execute(
                text(
                    "INSERT INTO investigation_entries (investigation_id, seq, case_id, inv_created_at, kind, ts,"
                    " body, prev_hash, hash) VALUES (:i, :s, :c, 1, :k, 1, :b, :p, :h)"
                ),
                {"i": iid, "s": seq, "c": case_id, "k": kind, "b": body.replace("IID", iid), "p": prev, "h": h},
            )
            prev = h
        conn.execute(
            text(
                "INSERT INTO investigations (id, case_id, status, started_by, nonce, model, created_at,"
                " updated_at, steps, tokens, entries, head_hash) VALUES"
                " (:i, :c, 'done', 'analyst', 'n', 'm', :t, :t, 1, 10, :n, :h)"
            ),
            {"i": iid, "c": case_id, "t": time.time(), "n": len(bodies), "h": prev},
        )
    return iid


@pytest.mark.blank_database
def test_ledgers_stored_before_the_upgrade_are_sealed_by_the_operator_when_their_chain_verifies(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database_url)
    try:
        command.upgrade(alembic_config(engine), "0840_investigations")
        good = _legacy_ledger(engine, [_body("IID", 1, "prompt", {"text": "look"}), _body("IID", 2, "report", {})])
        broken = _legacy_ledger(engine, [_body("IID", 1, "prompt", {"text": "a"}), _body("IID", 2, "report", {})])
        with engine.begin() as conn:  # changed before the upgrade: its chain no longer holds
            conn.execute(
                text("UPDATE investigation_entries SET body = :b WHERE investigation_id = :i AND seq = 1"),
                {"b": _body(broken, 1, "prompt", {"text": "changed"}), "i": broken},
            )
        migrate(engine)
        settings = open_settings(tmp_path, database_url)
        key = seal.ledger_key(settings)
        with run_server(settings):  # the server seals nothing by itself: that would vouch for a rewrite
            pass
        unsealed = ledger.verify(engine, good, key)
        assert unsealed is not None and unsealed["verified"] is False and unsealed["mac"] == "unkeyed"
        assert "seal-legacy" in unsealed["reason"]

        env = {"AGENTWATCH_DATABASE_URL": database_url}
        ran = run_cli(["investigations", "seal-legacy", "--yes"], tmp_path, env=env)
        assert ran.code == 0, ran.stderr
        assert json.loads(ran.stdout) == {"sealed": 1, "left": 1}
        assert ledger.verify(engine, good, key) == {
            "verified": True,
            "entries": 2,
            "first_bad_seq": None,
            "reason": None,
            "mac": "valid",
        }
        left = ledger.verify(engine, broken, key)
        assert left is not None and left["verified"] is False and left["mac"] == "unkeyed"
        assert left["first_bad_seq"] == 1
        [entry] = AuditLog(engine).query(action="investigations.seal_legacy")
        assert entry["actor"]["kind"] == "cli" and entry["details"] == {"sealed": 1, "left": 1}
        again = run_cli(["investigations", "seal-legacy", "--yes"], tmp_path, env=env)
        assert json.loads(again.stdout) == {"sealed": 0, "left": 1}  # what verifies was sealed once

        with engine.begin() as conn:  # a sealed legacy entry changed afterwards is caught by the chain
            conn.execute(
                text("UPDATE investigation_entries SET body = :b WHERE investigation_id = :i AND seq = 1"),
                {"b": _body(good, 1, "prompt", {"text": "changed"}), "i": good},
            )
        after = ledger.verify(engine, good, key)
        assert after is not None and after["verified"] is False and after["first_bad_seq"] == 1
    finally:
        engine.dispose()


def test_seal_legacy_asks_first(tmp_path: Path) -> None:
    refused = run_cli(["investigations", "seal-legacy"], tmp_path, stdin=b"n\n")
    assert refused.code == 1 and "seal every ledger head" in refused.stderr
