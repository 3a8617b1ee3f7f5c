"""The agent inventory: one row per service (address, port, protocol), stable across scans.

A scan is applied as a diff: agents not known (or known as gone) are ``new``,
known agents whose fingerprint (framework, type, level, MCP tools, models)
moved are ``changed`` (with the new MCP tools named), and known agents inside
the scanned addresses and ports that did not answer are ``gone`` (only when the scan ran
every detector that had recognised them: a scan with fewer detectors cannot tell). Agents seen
in telemetry (processes calling LLM APIs, MCP servers used in sessions) join
the same table with ``source = "telemetry"``; scans never mark them gone.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import Engine, and_, func, select, update

from agentwatch.discovery.allowlist import Targets
from agentwatch.discovery.probes import DETECTORS
from agentwatch.discovery.schema import agents as agents_t
from agentwatch.events.model import iso
from agentwatch.store.upsert import upsert
from agentwatch.store.writer_turns import turn_of

_UPDATE = {
    c: (lambda name: lambda t, ex: getattr(ex, name))(c)
    for c in ("address", "port", "protocol", "source", "last_seen", "last_scan_id", "gone", "fingerprint", "body")
}


def _names(items: Any, key: str = "name") -> list[str]:
    if not isinstance(items, list):
        return []
    return sorted({str(i.get(key)) for i in items if isinstance(i, dict) and i.get(key)})


def tools_of(agent: dict[str, Any]) -> list[str]:
    mcp = agent.get("mcp_capabilities") or {}
    return _names(mcp.get("tools"))


def fingerprint(agent: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    facts = {
        "framework": agent.get("framework"),
        "agent_type": agent.get("agent_type"),
        "confidence_level": agent.get("confidence_level"),
        "tools": tools_of(agent),
        "models": sorted(map(str, (agent.get("metadata") or {}).get("models", [])))[:100],
    }
    return hashlib.sha256(orjson.dumps(facts, option=orjson.OPT_SORT_KEYS)).hexdigest(), facts


def brief(agent: dict[str, Any]) -> dict[str, Any]:
    return {
        k: agent.get(k) for k in ("id", "ip_address", "port", "protocol", "framework", "agent_type", "confidence_level")
    }


def _load(conn: Any, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = list(ids)
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), 500):
        rows = conn.execute(select(agents_t).where(agents_t.c.id.in_(ids[i : i + 500]))).mappings()
        out.update({r["id"]: dict(r) for r in rows})
    return out


def apply_scan(
    engine: Engine,
    found: list[dict[str, Any]],
    *,
    scan_id: str,
    targets: Targets,
    ports: list[int],
    detectors: Iterable[str] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Merge a scan's agents into the inventory; fills first/last_seen in place; returns the diff.

    ``detectors`` are the scan's (default: all); a known agent missing from the scan is gone
    only if each detector that signalled it before was among them."""
    now = now or time.time()
    diff: dict[str, list[dict[str, Any]]] = {"new": [], "changed": [], "gone": []}
    seen = {a["id"] for a in found}
    with engine.begin() as conn:
        known = _load(conn, seen)
        rows = []
        for agent in found:
            fp, facts = fingerprint(agent)
            old = known.get(agent["id"])
            first = old["first_seen"] if old is not None else now
            agent["first_seen"], agent["last_seen"] = iso(first), iso(now)
            if old is None or old["gone"]:
                diff["new"].append({**brief(agent), "returned": old is not None})
            elif old["fingerprint"] != fp:
                before = orjson.loads(old["body"])
                _, old_facts = fingerprint(before)
                changes = sorted(k for k in facts if facts[k] != old_facts.get(k))
                new_tools = sorted(set(facts["tools"]) - set(old_facts["tools"]))
                diff["changed"].append({**brief(agent), "changes": changes, "new_tools": new_tools})
            rows.append(
                {
                    "id": agent["id"],
                    "address": agent["ip_address"],
                    "port": agent["port"],
                    "protocol": agent["protocol"],
                    "source": "scan",
                    "first_seen": first,
                    "last_seen": now,
                    "last_scan_id": scan_id,
                    "gone": 0,
                    "fingerprint": fp,
                    "body": orjson.dumps(agent).decode(),
                }
            )
        upsert(conn, agents_t, rows, ["id"], _UPDATE)
        candidates = conn.execute(
            select(agents_t.c.id, agents_t.c.address, agents_t.c.body).where(
                and_(agents_t.c.source == "scan", agents_t.c.gone == 0, agents_t.c.port.in_(ports))
            )
        ).all()
        ran = None if detectors is None else set(detectors)
        gone_ids = []
        for r in candidates:
            if r.id in seen or not targets.contains(r.address):
                continue
            body = orjson.loads(r.body)
            if ran is not None and not _recognisers(body) <= ran:
                continue  # this scan could not have recognised it: no conclusion
            gone_ids.append(r.id)
            diff["gone"].append(brief(body))
        for i in range(0, len(gone_ids), 500):
            conn.execute(update(agents_t).where(agents_t.c.id.in_(gone_ids[i : i + 500])).values(gone=1))
    return diff


def _recognisers(agent: dict[str, Any]) -> set[str]:
    """The selectable detectors whose signals made ``agent`` known."""
    return {s.get("detector") for s in agent.get("signals") or [] if s.get("detector") in DETECTORS}


def record_telemetry(engine: Engine, seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Upsert agents seen in telemetry; returns those new to the inventory (or back from gone)."""
    if not seen:
        return []
    new: list[dict[str, Any]] = []
    with turn_of(engine), engine.begin() as conn:
        known = _load(conn, [a["id"] for a in seen])
        rows = []
        for agent in seen:
            old = known.get(agent["id"])
            ts = agent.pop("_ts")
            if old is not None:
                body = orjson.loads(old["body"])
                merged = _merge_meta(body.get("metadata", {}), agent.get("metadata", {}))
                tools = sorted(set(tools_of(body)) | set(tools_of(agent)))
                agent = {**body, "metadata": merged, "last_seen": iso(max(ts, old["last_seen"]))}
                if agent.get("mcp_capabilities") is not None:
                    agent["mcp_capabilities"]["tools"] = [{"name": t} for t in tools][:200]
                first = old["first_seen"]
            else:
                first = ts
                agent["first_seen"], agent["last_seen"] = iso(ts), iso(ts)
                new.append(agent)
            fp, _ = fingerprint(agent)
            rows.append(
                {
                    "id": agent["id"],
                    "address": agent["ip_address"],
                    "port": agent["port"],
                    "protocol": agent["protocol"],
                    "source": "telemetry",
                    "first_seen": first,
                    "last_seen": max(ts, old["last_seen"]) if old is not None else ts,
                    "last_scan_id": None,
                    "gone": 0,
                    "fingerprint": fp,
                    "body": orjson.dumps(agent).decode(),
                }
            )
        upsert(conn, agents_t, rows, ["id"], _UPDATE)
    return new


def _merge_meta(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(old)
    for k, v in new.items():
        if isinstance(v, list) and isinstance(out.get(k), list):
            out[k] = sorted(set(map(str, out[k])) | set(map(str, v)))[:50]
        else:
            out[k] = v
    return out


def list_agents(
    engine: Engine, *, limit: int, offset: int, include_gone: bool, source: str | None = None
) -> tuple[int, list[dict[str, Any]]]:
    cond = [] if include_gone else [agents_t.c.gone == 0]
    if source:
        cond.append(agents_t.c.source == source)
    where = and_(*cond) if cond else None
    with engine.connect() as conn:
        count_q = select(func.count()).select_from(agents_t)
        rows_q = select(agents_t).order_by(agents_t.c.last_seen.desc(), agents_t.c.id).limit(limit).offset(offset)
        if where is not None:
            count_q, rows_q = count_q.where(where), rows_q.where(where)
        total = conn.execute(count_q).scalar_one()
        rows = conn.execute(rows_q).mappings().all()
    out = []
    for r in rows:
        body = orjson.loads(r["body"])
        body.update(
            first_seen=iso(r["first_seen"]), last_seen=iso(r["last_seen"]), gone=bool(r["gone"]), source=r["source"]
        )
        out.append(body)
    return total, out


def count_agents(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(agents_t).where(agents_t.c.gone == 0)).scalar_one()
