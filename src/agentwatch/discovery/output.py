"""Scan results as a table, JSON, CSV or SARIF 2.1.0 (for code-scanning dashboards)."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from agentwatch import __version__

CSV_FIELDS = (
    "id", "host", "ip_address", "port", "protocol", "agent_type", "framework",
    "confidence_score", "confidence_level", "status", "signal_count", "first_seen", "last_seen",
)  # fmt: skip
SARIF_LEVEL = {"confirmed": "error", "high": "error", "medium": "warning", "low": "note"}


def to_json(result: dict[str, Any]) -> str:
    return orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()


def to_csv(result: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for agent in result["agents"]:
        # a leading = + - @ would be read as a formula by spreadsheet programs
        writer.writerow({k: _cell(agent.get(k)) for k in CSV_FIELDS})
    return buf.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_sarif(result: dict[str, Any]) -> str:
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for a in result["agents"]:
        rule_id = f"agent/{a['agent_type']}"
        rules.setdefault(
            rule_id,
            {
                "id": rule_id,
                "name": a["agent_type"],
                "shortDescription": {"text": f"AI service of type {a['agent_type']}"},
            },
        )
        results.append(
            {
                "ruleId": rule_id,
                "level": SARIF_LEVEL.get(a["confidence_level"], "note"),
                "message": {
                    "text": f"{a['framework']} ({a['agent_type']}) at {a['ip_address']}:{a['port']}, "
                    f"confidence {a['confidence_level']} ({a['confidence_score']})"
                },
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": f"{a['protocol']}://{a['ip_address']}:{a['port']}/"}
                        }
                    }
                ],
                "partialFingerprints": {"agentId": a["id"]},
                "properties": {"signals": [s["signal_type"] for s in a["signals"]], "status": a["status"]},
            }
        )
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {"name": "agentwatch-discovery", "version": __version__, "rules": list(rules.values())}
                },
                "results": results,
                "invocations": [{"executionSuccessful": result.get("status") == "completed"}],
            }
        ],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()


def render(result: dict[str, Any], fmt: str) -> str:
    return {"json": to_json, "csv": to_csv, "sarif": to_sarif}[fmt](result)
