"""Translate one parsed query for each target, and run it on all of them at once.

Each target runs under its own timeout and row cap; whatever one target does (fails, hangs,
answers too much) shows in its own status and never in another's. Rows are merged in target
order, each carrying its target's name, with the secrets in them masked
(:mod:`agentwatch.federated.redact`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from sqlalchemy import Engine

from agentwatch.federated import esql, kql, local, spl
from agentwatch.federated.dialect import Window
from agentwatch.federated.language import Node
from agentwatch.federated.redact import redact_row
from agentwatch.federated.remote import RUNNERS, TargetFailed
from agentwatch.federated.settings import TargetSettings

log = structlog.get_logger("agentwatch.federated")

DEFAULT_FIELDS = {"splunk": spl.DEFAULT_FIELDS, "sentinel": kql.DEFAULT_FIELDS, "elastic": esql.DEFAULT_FIELDS}


def field_map(target: TargetSettings) -> dict[str, str]:
    return {**DEFAULT_FIELDS.get(target.kind, {}), **target.field_map}


def translate(target: TargetSettings, node: Node, window: Window, engine: Engine) -> str:
    """The query in ``target``'s own language, asking for one row past its cap (to see truncation)."""
    limit = target.max_rows + 1
    fields = field_map(target)
    if target.kind == "splunk":
        return spl.render(spl.Spl().condition(node, fields), target.index or "main", window, limit)
    if target.kind == "sentinel":
        return kql.render(kql.Kql().condition(node, fields), target.table or "", fields["ts"], window, limit)
    if target.kind == "elastic":
        return esql.render(esql.Esql().condition(node, fields), target.index or "", fields["ts"], window, limit)
    return local.render(engine, node, window, limit)


def _local_rows(engine: Engine, node: Node, window: Window, limit: int, deadline: float) -> list[Any]:
    if time.monotonic() >= deadline:
        raise TimeoutError  # the worker thread started too late: nothing to ask the store any more
    return local.run(engine, node, window, limit, deadline)


def _redacted(rows: list[Any]) -> list[dict[str, Any]]:
    return [redact_row(r) for r in rows]


async def _rows(target: TargetSettings, native: str, node: Node, window: Window, engine: Engine) -> list[Any]:
    if target.kind == "agentwatch_local":
        deadline = time.monotonic() + target.timeout_s  # the store stops the statement then too
        return await asyncio.to_thread(_local_rows, engine, node, window, target.max_rows + 1, deadline)
    return await RUNNERS[target.kind](target, native)


async def run_one(
    target: TargetSettings, node: Node, window: Window, engine: Engine
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    native = translate(target, node, window, engine)
    status: dict[str, Any] = {"target": target.name, "kind": target.kind, "native_query": native}
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    try:
        rows = await asyncio.wait_for(_rows(target, native, node, window, engine), target.timeout_s)
    except TimeoutError:
        status.update(status="timeout", reason=f"no answer within timeout_s ({target.timeout_s:g} s)")
    except TargetFailed as exc:
        status.update(status="error", reason=str(exc))
    except Exception as exc:  # one target's bug must not fail the others; logged without its text
        log.warning("federated_target_failed", target=target.name, error=type(exc).__name__)
        status.update(status="error", reason=f"internal error ({type(exc).__name__})")
    else:
        if len(rows) > target.max_rows:
            rows = rows[: target.max_rows]
            status.update(status="truncated", reason=f"more than max_rows ({target.max_rows}) rows")
        else:
            status["status"] = "ok"
        rows = await asyncio.to_thread(_redacted, rows)
    status["rows"] = len(rows)
    status["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
    return status, rows


async def fan_out(targets: list[TargetSettings], node: Node, window: Window, engine: Engine) -> dict[str, Any]:
    done = await asyncio.gather(*(run_one(t, node, window, engine) for t in targets))
    merged = [{"target": st["target"], "row": row} for st, rows in done for row in rows]
    return {"rows": merged, "targets": [st for st, _ in done]}
