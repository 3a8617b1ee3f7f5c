"""Sending a native query to a SIEM and reading its rows, one function per kind.

Every request goes through the SSRF guard's client (redirects never followed), with the
target's timeout, and its answer is read up to the target's ``max_response_bytes``. A failure is
a :class:`TargetFailed` whose reason names what went wrong without a secret: the credential is
read from its environment variable here, sent in one header, and appears nowhere else.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from agentwatch.federated.settings import TargetSettings
from agentwatch.masking import mask_text
from agentwatch.net.bounded_body import ACCEPT_ENCODING, BadEncoding, BodyTooLarge, read_bounded
from agentwatch.net.ssrf import guarded_client
from agentwatch.notify.base import ssrf_refusal

MAX_REASON = 200
MAX_SCANNED = 4096  # of a target's message: enough for the reason shown, bounded for the masking


class TargetFailed(Exception):
    """The target could not answer; ``str()`` is the reason shown in the answer."""


def _printable(text: str, secret: str | None = None) -> str:
    """``text`` fit for a reason: the credential taken out first (a target may echo what it was
    sent, and a cut made first could leave part of it), then the secrets it quotes (an error
    message can quote an event, :func:`agentwatch.masking.mask_text`), then control characters,
    then cut."""
    if secret:
        text = text.replace(secret, "[redacted]")
    text = mask_text(text[:MAX_SCANNED])
    return "".join(ch if ch.isprintable() else " " for ch in text)[:MAX_REASON]


def credential(target: TargetSettings) -> str | None:
    if target.credential_env is None:
        return None
    value = os.environ.get(target.credential_env)
    if not value:
        raise TargetFailed(f"credential: environment variable {target.credential_env} is not set")
    return value


def _remote_reason(body: bytes, secret: str | None) -> str:
    """The message a SIEM put in its error answer, if it is one we know."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(doc, dict):
        return ""
    err = doc.get("error")
    if isinstance(err, dict):  # Log Analytics {message, code}, Elasticsearch {type, reason}
        text = err.get("reason") or err.get("message") or err.get("type")
        return _printable(str(text), secret) if text else ""
    msgs = doc.get("messages")  # Splunk
    if isinstance(msgs, list) and msgs and isinstance(msgs[0], dict):
        return _printable(str(msgs[0].get("text", "")), secret)
    return ""


async def _post(target: TargetSettings, path: str, headers: dict[str, str], secret: str | None, **body: Any) -> bytes:
    assert target.url is not None  # noqa: S101 (the settings require it for remote kinds)
    url = target.url + path
    all_headers = {"Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING, **headers}
    try:
        async with (
            guarded_client(allow_private=target.allow_private, timeout=target.timeout_s) as client,
            client.stream("POST", url, headers=all_headers, **body) as resp,
        ):
            data = await read_bounded(resp, target.max_response_bytes)
    except BodyTooLarge:
        raise TargetFailed(f"answer larger than max_response_bytes ({target.max_response_bytes} bytes)") from None
    except BadEncoding as exc:
        raise TargetFailed(f"unreadable answer ({exc})") from None
    except httpx.TimeoutException:
        raise TimeoutError from None
    except httpx.HTTPError as exc:
        refusal = ssrf_refusal(exc)
        if refusal is not None:
            raise TargetFailed(f"refused by the SSRF guard ({str(refusal).removeprefix('url: ')})") from None
        raise TargetFailed(f"cannot connect ({type(exc).__name__})") from None
    if resp.status_code >= 300:
        said = _remote_reason(data, secret)
        raise TargetFailed(f"answered {resp.status_code}" + (f": {said}" if said else ""))
    return data


def _json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise TargetFailed("the answer is not JSON") from None


def _table(columns: Any, values: Any) -> list[dict[str, Any]]:
    if not isinstance(columns, list) or not isinstance(values, list):
        raise TargetFailed("the answer has no columns and rows")
    names = [c.get("name") if isinstance(c, dict) else None for c in columns]
    if not all(isinstance(n, str) for n in names):
        raise TargetFailed("the answer's columns have no names")
    out = []
    for row in values:
        if not isinstance(row, list) or len(row) != len(names):
            raise TargetFailed("a row of the answer does not fit its columns")
        out.append(dict(zip(names, row, strict=True)))
    return out


async def splunk(target: TargetSettings, native: str) -> list[dict[str, Any]]:
    """``POST /services/search/jobs/export`` (output_mode json): one JSON object per line, each
    result under ``result``."""
    token = credential(target)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    form = {"search": native, "output_mode": "json"}
    data = await _post(target, "/services/search/jobs/export", headers, token, data=form)
    rows: list[dict[str, Any]] = []
    for line in data.splitlines():
        if not line.strip():
            continue
        doc = _json(line)
        if not isinstance(doc, dict):
            raise TargetFailed("a line of the answer is not a JSON object")
        result = doc.get("result")
        if isinstance(result, dict):
            rows.append(result)
        elif doc.get("messages") and not rows and not doc.get("preview", False) and "result" not in doc:
            fatal = [m for m in doc["messages"] if isinstance(m, dict) and m.get("type") in ("FATAL", "ERROR")]
            if fatal:
                raise TargetFailed(f"search failed: {_printable(str(fatal[0].get('text', '')), token)}")
    return rows


async def sentinel(target: TargetSettings, native: str) -> list[dict[str, Any]]:
    """Log Analytics ``POST /v1/workspaces/{id}/query``: ``tables[0]`` with columns and rows."""
    token = credential(target)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    path = f"/v1/workspaces/{quote(target.workspace or '', safe='')}/query"
    doc = _json(await _post(target, path, headers, token, json={"query": native}))
    tables = doc.get("tables") if isinstance(doc, dict) else None
    if not isinstance(tables, list):
        raise TargetFailed("the answer holds no tables")
    if not tables:
        return []
    first = tables[0] if isinstance(tables[0], dict) else {}
    return _table(first.get("columns"), first.get("rows"))


async def elastic(target: TargetSettings, native: str) -> list[dict[str, Any]]:
    """Elasticsearch ``POST /_query`` (ES|QL): ``columns`` and ``values``."""
    key = credential(target)
    headers = {"Authorization": f"ApiKey {key}"} if key else {}
    doc = _json(await _post(target, "/_query", headers, key, json={"query": native}))
    if not isinstance(doc, dict):
        raise TargetFailed("the answer is not a JSON object")
    return _table(doc.get("columns"), doc.get("values"))


RUNNERS = {"splunk": splunk, "sentinel": sentinel, "elastic": elastic}
