"""The proxy core: forward a request to its route's upstream and relay the answer byte for byte.

What the hot path does, and nothing more: read the body (size-capped), parse it only when the
guard must decide before forwarding (enforce mode), send it upstream on a pooled
connection, relay the status, headers and body chunks as they arrive while keeping a
bounded copy, and hand the exchange to the recorder. Everything else (parsing the request
and the streams, rebuilding tool calls, redaction, pricing, events, alerts) happens after the
response.

The request goes upstream with the path and query string as the agent sent them (still
percent-encoded) after the route's base path. Upstream bodies are requested with
``Accept-Encoding: identity`` so that the bytes the agent gets are exactly the bytes the
upstream sent and the copy can be parsed without decoding.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote

import orjson
import structlog
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from agentwatch.capture.cost import PriceTable
from agentwatch.capture.gateway import providers, relay_cut
from agentwatch.capture.gateway.events import EventBuilder
from agentwatch.capture.gateway.exchange import Exchange, parse_request
from agentwatch.capture.gateway.identify import oisp_provider, provider_index
from agentwatch.capture.gateway.providers.base import ParsedRequest, Provider
from agentwatch.capture.gateway.recorder import Recorder
from agentwatch.capture.gateway.transport import (
    REFUSED_PREFIX,
    Origin,
    UpstreamFailure,
    UpstreamPool,
    UpstreamResponse,
    literal_problem,
)
from agentwatch.capture.guard import Guard, Verdict
from agentwatch.capture.redact import Redactor, Report, TooDeep, mask, mask_json, scan
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
# what the exchange records from the request headers, besides the route provider's key headers
RECORDED_HEADERS = frozenset({b"traceparent", b"x-agentwatch-agent", b"x-agentwatch-session", b"user-agent"})
# the server adds its own Date and Server headers; two of each would be invalid
DROP_RESPONSE = HOP_BY_HOP | {b"date", b"server"}
STREAM_TYPES = ("text/event-stream", "application/x-ndjson", "application/jsonl", "application/stream+json")
JSON_LEAD = b" \t\r\n"  # JSON whitespace: a body may start with it (and with a UTF-8 BOM) and still be JSON
GEMINI_NAME = "google"


class BodyResponse(Response):
    """A complete upstream answer, sent as is (two ASGI messages, nothing computed)."""

    def __init__(self, status: int, raw_headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status_code = status
        self.raw_headers = raw_headers
        self.body = body
        self.background = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


class RelayResponse(Response):
    """A streamed relay: the upstream bytes are sent as they come, a copy is kept for the recorder.

    Starlette's StreamingResponse runs an anyio task group per response on ASGI 2.3 servers
    (uvicorn); this watches for the client going away with one plain task instead, and stops
    reading the upstream when it does, even in the middle of a wait for the upstream's next
    bytes (an abandoned LLM stream is not read to its end, nor held open while the model pauses). The
    exchange is handed to the recorder when the relay ends, however it ends.
    """

    def __init__(
        self,
        status: int,
        raw_headers: list[tuple[bytes, bytes]],
        upstream: UpstreamResponse,
        ex: Exchange,
        limit: int,
        done: Any,
        head: bytes = b"",
    ) -> None:
        self.status_code = status
        self.raw_headers = raw_headers
        self.upstream = upstream
        self.ex = ex
        self.limit = limit
        self.done = done  # called once with the exchange when the relay is over
        self.head = head  # body bytes already read from the upstream, sent first
        self.background = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        ex, upstream, limit, head = self.ex, self.upstream, self.limit, self.head

        def left(w: asyncio.Future[None]) -> None:
            if not w.cancelled():  # the agent hung up: a wait for upstream bytes (a model may pause) ends now
                upstream.interrupt()

        watcher = asyncio.ensure_future(disconnected())
        watcher.add_done_callback(left)
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            while True:
                if head:
                    chunk, head = head, b""
                else:
                    chunk = await upstream.next_chunk()
                if watcher.done():
                    if not upstream.complete:
                        _left_midway(ex)
                    break
                if chunk is None:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    break
                if ex.t_first is None:
                    ex.t_first = time.perf_counter()
                ex.capture(chunk, limit)
                more = not upstream.complete  # the last bytes go out with the end of the response
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
                if not more:
                    break
        except UpstreamFailure as exc:
            ex.upstream_error = str(exc)
            # the agent's response stays unfinished, so the agent sees the break too
            relay_cut.mark()
            log.warning("gateway.upstream_cut", route=ex.route, error=ex.upstream_error[:300])
        finally:
            watcher.cancel()
            ex.t_end = time.perf_counter()
            self.done(ex)
            await upstream.aclose()


def _left_midway(ex: Exchange) -> None:
    """Mark a stream the agent hung up on before its end (what it got so far stays captured)."""
    ex.client_left = True
    ex.upstream_error = "ClientDisconnected: the agent closed the connection before the end of the stream"


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
        self.origin = Origin(cfg.base_url)
        self.host_header = self.origin.host_header
        self.prefix = f"/gateway/{name}/".encode()  # the raw request path up to the upstream path
        if cfg.provider in ("openai", "openai_compatible"):
            detected = provider_index(data_dir).by_url(cfg.base_url)
            oisp_name = oisp_provider(detected or ("openai" if cfg.provider == "openai" else name))
        elif cfg.provider == "gemini":
            oisp_name = GEMINI_NAME
        else:
            oisp_name = cfg.provider
        self.provider: Provider = providers.get(cfg.provider, oisp_name)
        self.recorded_headers = RECORDED_HEADERS | {h.encode() for h in self.provider.key_headers}
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
        relay_cut.install()
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

    def _abandoned(self, ex: Exchange, mode: str, verdict: Verdict | None) -> None:
        """Record an exchange the agent gave up on before the upstream's answer was complete."""
        ex.upstream_error = "ClientDisconnected: the agent closed the connection before the answer"
        ex.client_left = True
        ex.status_code = 499  # the client closed the request
        ex.t_end = time.perf_counter()
        self.recorder.schedule(ex, mode, verdict)

    async def handle(self, request: Request, route_name: str, path: str, body: bytes) -> Response:
        route = self.routes[route_name]
        t0 = time.perf_counter()
        ts = time.time()
        scope = request.scope
        path = "/" + path.lstrip("/")
        if route.refusal:
            return self.error_response(route, GatewayError(403, REFUSED_PREFIX + route.refusal, "upstream_refused"))
        mode = self.guard.mode_for(route.cfg.guard)
        provider = route.provider
        doc: Any = None
        preq: ParsedRequest | None = None
        if mode == "enforce":  # the guard decides before forwarding; otherwise the recorder parses, later
            doc, preq = parse_request(provider, path, _json_text(body))

        # one pass over the request headers: what goes upstream, and what the exchange records
        upstream_headers: list[tuple[bytes, bytes]] = []
        seen: dict[bytes, bytes] = {}
        recorded = route.recorded_headers
        encoding = b""
        for k, v in scope["headers"]:
            if k in recorded and k not in seen:
                seen[k] = v
            elif k == b"content-encoding" and v.strip().lower() not in (b"", b"identity"):
                encoding = v  # any coding but identity, even one of several headers, hides the body
            if k not in DROP_REQUEST:
                upstream_headers.append((k, v))
        names = {k.decode("latin-1"): v.decode("latin-1") for k, v in seen.items()}
        query_string: bytes = scope.get("query_string") or b""
        client = scope.get("client")
        ex = Exchange(
            route=route.name,
            provider=provider,
            endpoint=route.base_url + path,
            path=path,
            method=scope["method"],
            ts=ts,
            t0=t0,
            request=preq,
            request_body=body if preq is None else b"",
            api_key=provider.api_key(names, QueryParams(query_string) if provider.key_query else {}),
            traceparent=names.get("traceparent"),
            agent=_short(names.get("x-agentwatch-agent")),
            session_id=_short(names.get("x-agentwatch-session")),
            user_agent=names.get("user-agent"),
            client=(client[0], client[1]) if client else None,
            server_port=(scope.get("server") or (None, None))[1],
        )

        verdict: Verdict | None = None
        unread = _unreadable(body, doc, encoding) if preq is not None else None
        if preq is not None and (preq.is_llm_call or unread):
            verdict, masked, count = self._inline_verdict(route, ex, doc, unread)
            ex.guard = verdict.summary()
            if verdict.action == "block":
                response = self.error_response(route, GatewayError(403, verdict.refusal(), "blocked_by_policy"))
                ex.status_code = 403
                ex.content_type = "application/json"
                ex.response_chunks = [bytes(response.body)]
                ex.t_end = ex.t_first = time.perf_counter()
                self.recorder.schedule(ex, mode, verdict)
                return response
            if verdict.action == "redact":  # the body was walked whole (a part too deep is a block)
                ex.request_redactions = count
                body = orjson.dumps(masked)

        upstream_headers += [
            (b"host", route.host_header),
            (b"accept-encoding", b"identity"),
            (b"content-length", str(len(body)).encode()),
        ]
        # the path as the agent sent it (still percent-encoded), after the route's base path
        raw_path: bytes = scope.get("raw_path") or b""
        if raw_path.startswith(route.prefix):
            rest = b"/" + raw_path[len(route.prefix) :].lstrip(b"/")
        else:
            rest = quote(path, safe="/:@!$&'()*+,;=~").encode("ascii")
        target = route.origin.base_path + rest
        if query_string:
            target += b"?" + query_string
        pool = self.pool
        if pool is None:
            return self.error_response(route, GatewayError(503, "gateway: not running", "unavailable"))
        recorder = self.recorder
        try:
            resp = await pool.send(route.origin, ex.method, target, upstream_headers, body, route.name)
        except asyncio.CancelledError:  # the agent hung up first (api.gateway): the request still went out
            self._abandoned(ex, mode, verdict)
            raise
        except UpstreamFailure as exc:
            ex.upstream_error = str(exc)
            ex.status_code = exc.status
            ex.t_end = time.perf_counter()
            recorder.schedule(ex, mode, verdict)
            code = "upstream_refused" if exc.status == 403 else "upstream_error"
            return self.error_response(route, GatewayError(exc.status, str(exc), code))

        ex.status_code = resp.status
        out_headers: list[tuple[bytes, bytes]] = []
        has_length = False
        for k, v in resp.headers:  # names are lower-case
            if k == b"content-type":
                ex.content_type = v.decode("latin-1")
            elif k == b"content-length":
                has_length = True
            if k not in DROP_RESPONSE:
                out_headers.append((k, v))
        limit = self.settings.max_capture_bytes
        ctype = ex.content_type
        # streams are relayed as they come; a JSON answer, or one of a declared length, is read whole first
        # (an upstream failure midway is then answered with a clean 502) unless it outgrows the capture limit
        streaming = ctype.startswith(STREAM_TYPES) or ("json" not in ctype and not has_length)
        head = b""
        if not streaming:
            # a larger answer is relayed as it comes after what was read: the memory held stays bounded
            parts: list[bytes] = []
            size = 0
            try:
                while size <= limit and (chunk := await resp.next_chunk()) is not None:
                    parts.append(chunk)
                    size += len(chunk)
            except asyncio.CancelledError:
                await resp.aclose()
                self._abandoned(ex, mode, verdict)
                raise
            except UpstreamFailure as exc:
                await resp.aclose()
                ex.upstream_error = str(exc)
                ex.status_code = 502  # what the agent is answered
                ex.t_end = time.perf_counter()
                recorder.schedule(ex, mode, verdict)
                return self.error_response(route, GatewayError(502, ex.upstream_error, "upstream_error"))
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            if size > limit:
                head = data
                streaming = True
        if not streaming:
            await resp.aclose()
            ex.t_first = ex.t_end = time.perf_counter()
            ex.capture(data, limit)
            recorder.schedule(ex, mode, verdict)
            if ex.method != "HEAD":  # a HEAD answer keeps the length of the body it describes
                if has_length:
                    out_headers = [(k, v) for k, v in out_headers if k != b"content-length"]
                out_headers.append((b"content-length", str(len(data)).encode()))
            return BodyResponse(resp.status, out_headers, data)

        def done(finished: Exchange) -> None:
            recorder.schedule(finished, mode, verdict)

        return RelayResponse(resp.status, out_headers, resp, ex, limit, done, head)

    def _probe(self, route: Route, ex: Exchange, masked: bool) -> tuple[Any, Report]:
        """An unstored ai.request event of the request (secrets masked or not) and what the scan found."""
        red = Redactor("full")
        req = ex.parsed()
        messages = []
        for m in req.messages:
            text = m.get("content") or ""
            if masked:
                text = mask(text, [x for x in scan(text) if x.kind == "secret"])
            red.text(text)
            messages.append({**{k: v for k, v in m.items() if k in ("role", "name")}, "content": text})
        data: dict[str, Any] = {
            "provider": {"name": route.provider.name, "endpoint": ex.endpoint},
            "request_type": req.request_type,
            "streaming": req.streaming,
            "messages": messages,
        }
        if req.model:
            data["model"] = {"id": req.model}
        probe = normalize(
            {"event_type": "ai.request", "data": data, "source": {"collector": "agentwatch-gateway"}},
            type_validator=self.aw.type_validator,
            source_format="gateway",
        )
        return probe, red.report

    def _inline_verdict(self, route: Route, ex: Exchange, doc: Any, unread: str | None) -> tuple[Verdict, Any, int]:
        """Ask the guard (and the detection engine) before forwarding; the request stays in memory only.

        Returns the verdict and the body with its secrets masked (and how many were). Secrets are
        looked for in the whole body, not only in the message text the probe carries (a tool
        call's arguments sent back, a metadata field): what could be forwarded is what is checked.
        A body not read whole (``unread``, or nested deeper than the walk goes) is reported to the
        guard as uninspected, which blocks it.

        With ``enforce_action = "redact"``, a blocked request is checked again with its secrets
        masked: when nothing blocking is left, it is forwarded masked instead of blocked.
        """
        model = ex.parsed().model
        probe, report = self._probe(route, ex, masked=False)
        masked: Any = None
        count = 0
        if unread:
            report.uninspected = unread
        else:
            try:
                masked, count = mask_json(doc, report)
            except TooDeep as exc:
                report.uninspected = str(exc)
        verdict = self.guard.decide("enforce", probe, report, model)
        redact = self.guard.settings.enforce_action == "redact"
        if verdict.action == "block" and redact and report.secrets and not report.uninspected:
            masked_probe, masked_report = self._probe(route, ex, masked=True)
            if self.guard.decide("enforce", masked_probe, masked_report, model).action == "allow":
                verdict.action = "redact"
        return verdict, masked, count


def _json_text(body: bytes) -> bytes:
    """``body`` from its first JSON character: what a provider's JSON parser reads past is looked at too."""
    return body.removeprefix(b"\xef\xbb\xbf").lstrip(JSON_LEAD)


def _unreadable(body: bytes, doc: Any, encoding: bytes) -> str | None:
    """Why the guard cannot read a body the upstream may read (then it is refused), or None.

    A content-encoded body is opaque to the guard; a body that looks like JSON but does not
    parse (nested deeper than orjson reads, a lone surrogate escape) may still parse upstream.
    Any other body that is not JSON (a form upload) is not an LLM call and is not the guard's.
    """
    if encoding:
        coding = encoding.strip().lower()[:32].decode("latin-1")
        return f"the body is content-encoded ({coding}); the guard reads plain JSON only"
    if doc is None and _json_text(body)[:1] in (b"{", b"["):
        return "the body looks like JSON but does not parse"
    if isinstance(doc, dict | list) and _repeats_a_key(_json_text(body)):
        # the guard reads the last copy, but the body goes upstream as sent, earlier copies included
        return "an object repeats a key"
    return None


class _RepeatedKey(ValueError):
    pass


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _RepeatedKey
    return out


def _repeats_a_key(text: bytes) -> bool:
    """Whether any object of the (parseable) JSON ``text`` names a key twice.

    orjson keeps the last copy without saying so; the standard parser's pair hook sees them all.
    A body too deep for it is left to the walk, which refuses anything past 64 levels anyway.
    """
    try:
        json.loads(text, object_pairs_hook=_no_repeats)
    except _RepeatedKey:
        return True
    except (ValueError, RecursionError):
        return False
    return False


def _short(value: str | None) -> str | None:
    if not value:
        return None
    return value[:128]
