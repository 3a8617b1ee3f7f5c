"""The proxy core: forward a request to its route's upstream and relay the answer byte for byte.

What the hot path does, and nothing more: read the body (size-capped), parse it only when the
guard must decide before forwarding (enforce mode), send it upstream on a pooled
connection, relay the status, headers and body chunks as they arrive while keeping a
bounded copy, and hand the exchange to the recorder. Everything else (parsing streams,
rebuilding tool calls, redaction, pricing, events, alerts) happens after the response.

Upstream bodies are requested with ``Accept-Encoding: identity`` so that the bytes the agent
gets are exactly the bytes the upstream sent and the copy can be parsed without decoding.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response

from agentwatch.capture.cost import PriceTable
from agentwatch.capture.gateway import providers
from agentwatch.capture.gateway.events import EventBuilder
from agentwatch.capture.gateway.exchange import Exchange
from agentwatch.capture.gateway.identify import oisp_provider, provider_index
from agentwatch.capture.gateway.providers.base import ParsedRequest, Provider
from agentwatch.capture.gateway.recorder import Recorder
from agentwatch.capture.gateway.transport import (
    REFUSED_PREFIX,
    TRANSPORT_ERRORS,
    UpstreamFailure,
    UpstreamPool,
    failure,
    literal_problem,
)
from agentwatch.capture.guard import Guard, Verdict
from agentwatch.capture.redact import Redactor, Report, mask, mask_json, scan
from agentwatch.capture.settings import CaptureSettings, UpstreamRoute
from agentwatch.events.normalize import normalize

log = structlog.get_logger("agentwatch.capture.gateway")

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
DROP_REQUEST = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"accept-encoding",
    b"x-agentwatch-key",
    b"x-agentwatch-agent",
    b"x-agentwatch-session",
}
# the server adds its own Date and Server headers; two of each would be invalid
DROP_RESPONSE = HOP_BY_HOP | {b"date", b"server"}
STREAM_TYPES = ("text/event-stream", "application/x-ndjson", "application/jsonl", "application/stream+json")
GEMINI_NAME = "google"


class RelayResponse(Response):
    """A streamed relay: each upstream chunk is sent as it comes.

    Starlette's StreamingResponse runs an anyio task group per response on ASGI 2.3 servers
    (uvicorn); this watches for the client going away with one plain task instead, and stops
    reading the upstream when it does (an abandoned LLM stream is not read to its end).
    """

    def __init__(self, status: int, raw_headers: list[tuple[bytes, bytes]], chunks: Any) -> None:
        self.status_code = status
        self.raw_headers = raw_headers
        self.chunks = chunks
        self.background = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        watcher = asyncio.ensure_future(disconnected())
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for chunk in self.chunks:
                if watcher.done():
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            else:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            await self.chunks.aclose()


class GatewayError(Exception):
    """A request the gateway answers itself, in the route provider's error shape."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class Route:
    def __init__(self, name: str, cfg: UpstreamRoute, settings: CaptureSettings, data_dir: str) -> None:
        self.name = name
        self.cfg = cfg
        self.base_url = cfg.base_url
        parts = urlsplit(cfg.base_url)
        host = (parts.hostname or "").encode("idna")
        self.host_header = host if parts.port is None else host + b":" + str(parts.port).encode()
        if cfg.provider in ("openai", "openai_compatible"):
            detected = provider_index(data_dir).by_url(cfg.base_url)
            oisp_name = oisp_provider(detected or ("openai" if cfg.provider == "openai" else name))
        elif cfg.provider == "gemini":
            oisp_name = GEMINI_NAME
        else:
            oisp_name = cfg.provider
        self.provider: Provider = providers.get(cfg.provider, oisp_name)
        self.refusal = literal_problem(
            cfg.base_url,
            allow_loopback=settings.allow_loopback_upstreams,
            allow_private=settings.allow_private_upstreams,
        )


class Gateway:
    """The lifecycle component (``aw.components["gateway"]``) serving ``/gateway/<route>/...``."""

    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self.settings: CaptureSettings = aw.settings.capture
        data_dir = str(aw.settings.data_dir)
        self.routes = {name: Route(name, cfg, self.settings, data_dir) for name, cfg in self.settings.routes.items()}
        self.builder = EventBuilder(
            self.settings.redaction, PriceTable.for_data_dir(data_dir), provider_index(data_dir)
        )
        self.guard = Guard(self.settings.guard)
        self.recorder = Recorder(aw, self.builder, self.guard)
        self.pool: UpstreamPool | None = None

    async def start(self) -> None:
        self.guard.engine = self.aw.components.get("detection")
        self.recorder.start()
        self.pool = UpstreamPool(
            allow_loopback=self.settings.allow_loopback_upstreams,
            allow_private=self.settings.allow_private_upstreams,
            timeout=self.settings.upstream_timeout_s,
        )

    async def stop(self) -> None:
        await self.recorder.drain()
        if self.pool is not None:
            await self.pool.aclose()
            self.pool = None

    def health(self) -> dict[str, Any]:
        return {
            "routes": sorted(self.routes),
            "events_recorded": self.recorder.recorded,
            "events_dropped": self.recorder.dropped,
            "pending": self.recorder.pending,
        }

    # -- one request -------------------------------------------------------------
    def error_response(self, route: Route, exc: GatewayError) -> Response:
        body = orjson.dumps(route.provider.error(exc.status, exc.message, exc.code))
        return Response(body, exc.status, media_type="application/json")

    async def handle(self, request: Request, route_name: str, path: str, body: bytes) -> Response:
        route = self.routes[route_name]
        t0 = time.perf_counter()
        ts = time.time()
        path = "/" + path.lstrip("/")
        if route.refusal:
            return self.error_response(route, GatewayError(403, REFUSED_PREFIX + route.refusal, "upstream_refused"))
        mode = self.guard.mode_for(route.cfg.guard)
        doc: Any = None
        if body and body[:1] in (b"{", b"["):
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError:
                doc = None
        preq = route.provider.parse_request(path, doc) if doc is not None else ParsedRequest(is_llm_call=False)
        if preq.model is None:
            preq.model = route.provider.request_model(path, doc)
        headers = request.headers
        ex = Exchange(
            route=route.name,
            provider=route.provider,
            endpoint=route.base_url + path,
            path=path,
            method=request.method,
            ts=ts,
            t0=t0,
            request=preq,
            api_key=route.provider.api_key(headers, request.query_params),
            traceparent=headers.get("traceparent"),
            agent=_short(headers.get("x-agentwatch-agent")),
            session_id=_short(headers.get("x-agentwatch-session")),
            user_agent=headers.get("user-agent"),
            client=(request.client.host, request.client.port) if request.client else None,
            server_port=(request.scope.get("server") or (None, None))[1],
        )

        verdict: Verdict | None = None
        if mode == "enforce" and preq.is_llm_call:
            verdict = self._inline_verdict(route, ex)
            ex.guard = verdict.summary()
            if verdict.action == "block":
                error = GatewayError(
                    403, f"agentwatch guard blocked this request: {', '.join(verdict.reasons)}", "blocked_by_policy"
                )
                response = self.error_response(route, error)
                ex.status_code = 403
                ex.content_type = "application/json"
                ex.response_chunks = [bytes(response.body)]
                ex.t_end = ex.t_first = time.perf_counter()
                self.recorder.schedule(ex, mode, verdict)
                return response
            if verdict.action == "redact" and isinstance(doc, dict | list):
                masked, count = mask_json(doc)
                ex.request_redactions = count
                body = orjson.dumps(masked)

        upstream_headers = [(k, v) for k, v in request.headers.raw if k not in DROP_REQUEST]
        upstream_headers += [
            (b"host", route.host_header),
            (b"accept-encoding", b"identity"),
            (b"content-length", str(len(body)).encode()),
        ]
        url = route.base_url + path
        query = request.url.query
        if query:
            url += "?" + query
        pool = self.pool
        if pool is None:
            return self.error_response(route, GatewayError(503, "gateway: not running", "unavailable"))
        try:
            resp = await pool.send(request.method, url, upstream_headers, body, route.name)
        except UpstreamFailure as exc:
            ex.upstream_error = str(exc)
            ex.status_code = exc.status
            ex.t_end = time.perf_counter()
            self.recorder.schedule(ex, mode, verdict)
            code = "upstream_refused" if exc.status == 403 else "upstream_error"
            return self.error_response(route, GatewayError(exc.status, str(exc), code))

        ex.status_code = resp.status
        out_headers: list[tuple[bytes, bytes]] = []
        for k, v in resp.headers:
            lk = k.lower()
            if lk == b"content-type":
                ex.content_type = v.decode("latin-1")
            if lk not in DROP_RESPONSE:
                out_headers.append((lk, v))
        limit = self.settings.max_capture_bytes
        stream = resp.stream
        streaming = ex.content_type.startswith(STREAM_TYPES) or (preq.streaming and "json" not in ex.content_type)
        if not streaming:
            parts: list[bytes] = []
            try:
                async for chunk in stream:  # type: ignore[union-attr]
                    parts.append(chunk)
            except TRANSPORT_ERRORS as exc:
                ex.upstream_error = str(failure(exc, route.name))
                ex.t_end = time.perf_counter()
                self.recorder.schedule(ex, mode, verdict)
                return self.error_response(route, GatewayError(502, ex.upstream_error, "upstream_error"))
            finally:
                await resp.aclose()
            data = b"".join(parts)
            ex.t_first = ex.t_end = time.perf_counter()
            ex.capture(data, limit)
            self.recorder.schedule(ex, mode, verdict)
            response = Response(data, resp.status)
            response.raw_headers = [(k, v) for k, v in out_headers if k != b"content-length"] + [
                (b"content-length", str(len(data)).encode())
            ]
            return response

        recorder = self.recorder

        async def relay() -> Any:
            try:
                async for chunk in stream:  # type: ignore[union-attr]
                    if ex.t_first is None:
                        ex.t_first = time.perf_counter()
                    ex.capture(chunk, limit)
                    yield chunk
            except TRANSPORT_ERRORS as exc:
                ex.upstream_error = str(failure(exc, route.name))
            finally:
                ex.t_end = time.perf_counter()
                recorder.schedule(ex, mode, verdict)
                await resp.aclose()

        return RelayResponse(resp.status, out_headers, relay())

    def _probe(self, route: Route, ex: Exchange, masked: bool) -> tuple[Any, Report]:
        """An unstored ai.request event of the request (secrets masked or not) and what the scan found."""
        red = Redactor("full")
        messages = []
        for m in ex.request.messages:
            text = m.get("content") or ""
            if masked:
                text = mask(text, [x for x in scan(text) if x.kind == "secret"])
            red.text(text)
            messages.append({**{k: v for k, v in m.items() if k in ("role", "name")}, "content": text})
        data: dict[str, Any] = {
            "provider": {"name": route.provider.name, "endpoint": ex.endpoint},
            "request_type": ex.request.request_type,
            "streaming": ex.request.streaming,
            "messages": messages,
        }
        if ex.request.model:
            data["model"] = {"id": ex.request.model}
        probe = normalize(
            {"event_type": "ai.request", "data": data, "source": {"collector": "agentwatch-gateway"}},
            type_validator=self.aw.type_validator,
            source_format="gateway",
        )
        return probe, red.report

    def _inline_verdict(self, route: Route, ex: Exchange) -> Verdict:
        """Ask the guard (and the detection engine) before forwarding; the request stays in memory only.

        With ``enforce_action = "redact"``, a blocked request is checked again with its secrets
        masked: when nothing blocking is left, it is forwarded masked instead of blocked.
        """
        probe, report = self._probe(route, ex, masked=False)
        verdict = self.guard.decide("enforce", probe, report, ex.request.model)
        if verdict.action == "block" and self.guard.settings.enforce_action == "redact" and report.secrets:
            masked_probe, masked_report = self._probe(route, ex, masked=True)
            if self.guard.decide("enforce", masked_probe, masked_report, ex.request.model).action == "allow":
                verdict.action = "redact"
        return verdict


def _short(value: str | None) -> str | None:
    if not value:
        return None
    return value[:128]
